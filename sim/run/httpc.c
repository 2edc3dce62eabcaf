/* httpc: see httpc.h. */
#include "sim/run/httpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int connect_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int httpc_request(int port, const char *method, const char *path, const char *body, char **out)
{
    *out = NULL;
    int fd = connect_loopback(port);
    if (fd < 0)
        return fd;
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, port, body ? strlen(body) : 0, body ? body : "");
    if (n < 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -EIO;
    }
    size_t cap = 8192, got = 0;
    char *resp = malloc(cap);
    if (!resp) {
        close(fd);
        return -ENOMEM;
    }
    for (;;) {
        if (got + 1 == cap) {
            char *g = cap < HTTPC_MAX ? realloc(resp, cap * 2) : NULL;
            if (!g) {
                free(resp);
                close(fd);
                return -ENOMEM;
            }
            resp = g;
            cap *= 2;
        }
        ssize_t r = recv(fd, resp + got, cap - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    resp[got] = '\0';
    int status;
    const char *b = strstr(resp, "\r\n\r\n");
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1 || !b) {
        free(resp);
        return -EPROTO;
    }
    memmove(resp, b + 4, strlen(b + 4) + 1);
    *out = resp;
    return status;
}
