/* uplink_tls: the credentials of the gateway's channel to the headend. Without uplink.tls
 * insecure ones; with it TLS from the PEM files (read on every call: at start and on each
 * SIGHUP), mutual when uplink.tls.cert and .key are set.
 *
 * The headend refuses a bad client certificate during the TLS handshake and gRPC gives the
 * client no reason (with TLS 1.3 the gateway does not even see an error: its stream just
 * waits), so the gateway's own certificate is checked here first, with the same OpenSSL gRPC
 * uses, by the headend's rules (docs/protocol.md). */
#ifndef DERLOOP_UPLINK_TLS_H
#define DERLOOP_UPLINK_TLS_H

#include <stddef.h>

#include <grpc/grpc_security.h>

#include "gateway/uplink/uplink_config.h"

/* What the check of the gateway's own certificate found, for the log. note: "identity=ID
 * not_after=TIME" ("" without a client certificate); why: the reason the headend will refuse
 * it ("" when it looks right: expired, not yet valid, another gateway's identity, no
 * identity, not issued by a CA in uplink.tls.ca). */
struct uplink_cert_check {
    char note[160];
    char why[300];
};

/* New channel credentials for the caller to release; NULL with err naming the key and the file
 * when a file cannot be read or cannot work at all (no certificate, no private key, a key
 * that is not the certificate's). gRPC itself checks the PEM contents only at the first
 * handshake. */
grpc_channel_credentials *uplink_tls_credentials(const struct uplink_tls *tls,
                                                 const char *gateway_id,
                                                 struct uplink_cert_check *chk, char *err,
                                                 size_t errlen);

#endif
