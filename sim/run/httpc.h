/* httpc: the smallest HTTP/1.1 client der-sim needs to talk to der-headend on loopback (the
 * headend in the loop posts dispatches, `der-sim demo` reads the fleet's state). One request
 * per connection (Connection: close), 5 s timeouts, replies up to HTTPC_MAX bytes. */
#ifndef DERLOOP_HTTPC_H
#define DERLOOP_HTTPC_H

#define HTTPC_MAX (16 << 20)

/* METHOD path to 127.0.0.1:port, with a JSON body (NULL: none). Returns the HTTP status with
 * *out the reply body (malloc'd, NUL-terminated: the caller frees it), or -errno (*out NULL). */
int httpc_request(int port, const char *method, const char *path, const char *body, char **out);

#endif
