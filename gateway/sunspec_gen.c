/* placeholder: replaced by the SunSpec table generator */
#include <stdio.h>
int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    FILE *c = fopen(argv[1], "w"), *h = fopen(argv[2], "w");
    if (!c || !h)
        return 1;
    fputs("#include \"sunspec_models.h\"\nint sunspec_models_placeholder;\n", c);
    fputs("#ifndef SUNSPEC_MODELS_H\n#define SUNSPEC_MODELS_H\n#endif\n", h);
    fclose(c);
    fclose(h);
    return 0;
}
