/* uplink_tls: see uplink_tls.h. */
#include "gateway/uplink/uplink_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/pem.h"

#define CERT_URI_PREFIX "urn:derloop:gateway:"

/* ASN.1 time as ISO 8601 UTC. */
static void asn1_iso(const ASN1_TIME *t, char *buf, size_t len)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1 || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "?");
}

/* The gateway id a certificate names, by the headend's rule (docs/protocol.md): the SAN URI
 * urn:derloop:gateway:ID, else the subject CN; "" when none. */
static void cert_identity(X509 *x, char *out, size_t len)
{
    out[0] = '\0';
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && !out[0]; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI)
            continue;
        const char *uri = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        int n = ASN1_STRING_length(g->d.uniformResourceIdentifier);
        size_t plen = strlen(CERT_URI_PREFIX);
        if (n > (int)plen && !strncmp(uri, CERT_URI_PREFIX, plen))
            snprintf(out, len, "%.*s", n - (int)plen, uri + plen);
    }
    GENERAL_NAMES_free(names);
    if (!out[0] &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)len) < 0)
        out[0] = '\0';
}

/* Verifies cert against the CAs of the PEM text ca (client purpose). 1, or 0 with why. */
static int cert_verifies(X509 *x, const char *ca, char *why, size_t len)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    BIO *b = BIO_new_mem_buf(ca, -1);
    STACK_OF(X509_INFO) *infos = b ? PEM_X509_INFO_read_bio(b, NULL, NULL, NULL) : NULL;
    int ok = 0;
    for (int i = 0; store && infos && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *xi = sk_X509_INFO_value(infos, i);
        if (xi->x509)
            X509_STORE_add_cert(store, xi->x509);
    }
    if (store && ctx && X509_STORE_CTX_init(ctx, store, x, NULL) == 1) {
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
        ok = X509_verify_cert(ctx) == 1;
        if (!ok)
            snprintf(why, len, "%s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    } else {
        snprintf(why, len, "cannot set up the check");
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(b);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

/* What the gateway can tell about its own certificate before the headend refuses it: the
 * headend rejects a bad client certificate during the TLS handshake, and gRPC gives the
 * client no reason (with TLS 1.3 the gateway does not even see an error; its stream just
 * waits), so the reason is worked out here, with the same OpenSSL gRPC uses. -EINVAL with
 * note when the files cannot work at all (no certificate, no key, a key that is not the
 * certificate's); 1 with the reason in note when the headend will refuse the certificate
 * (expired, not yet valid, another gateway's identity, not issued by a CA in uplink.tls.ca:
 * harmless when the headend trusts another CA for gateways); 0 when it looks right. */
static int check_cert(const char *gateway_id, const char *ca, const char *cert, const char *key,
                      char *note, size_t len, char *why, size_t whylen)
{
    why[0] = '\0';
    BIO *b = BIO_new_mem_buf(cert, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!x) {
        snprintf(note, len, "uplink.tls.cert: no certificate in the file");
        ERR_clear_error();
        return -EINVAL;
    }
    b = BIO_new_mem_buf(key, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    int rc = 0;
    if (!k) {
        snprintf(note, len,
                 "uplink.tls.key: no private key in the file (encrypted keys are not "
                 "supported)");
        rc = -EINVAL;
    } else if (X509_check_private_key(x, k) != 1) {
        snprintf(note, len, "uplink.tls.key: not the key of uplink.tls.cert");
        rc = -EINVAL;
    }
    EVP_PKEY_free(k);
    if (rc == 0) {
        char id[128], na[32], nb[32], verr[120];
        cert_identity(x, id, sizeof id);
        asn1_iso(X509_get0_notAfter(x), na, sizeof na);
        asn1_iso(X509_get0_notBefore(x), nb, sizeof nb);
        if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
            snprintf(why, whylen, "expired at %s: the headend refuses the TLS handshake", na);
        else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
            snprintf(why, whylen, "not valid before %s: the headend refuses the TLS handshake", nb);
        else if (!id[0])
            snprintf(why, whylen,
                     "names no gateway (no SAN URI " CERT_URI_PREFIX "ID, no CN): the headend "
                     "refuses every Register");
        else if (strcmp(id, gateway_id) != 0)
            snprintf(why, whylen,
                     "names gateway %.63s, this gateway is %s: the headend refuses its Register",
                     id, gateway_id);
        else if (!cert_verifies(x, ca, verr, sizeof verr))
            snprintf(why, whylen,
                     "not issued by a CA in uplink.tls.ca (%s): the headend refuses the TLS "
                     "handshake unless its --tls-client-ca holds the issuer",
                     verr);
        snprintf(note, len, "identity=%s not_after=%s", id[0] ? id : "-", na);
        rc = why[0] ? 1 : 0;
    }
    X509_free(x);
    ERR_clear_error();
    return rc;
}

grpc_channel_credentials *uplink_tls_credentials(const struct uplink_tls *tls,
                                                 const char *gateway_id,
                                                 struct uplink_cert_check *chk, char *err,
                                                 size_t errlen)
{
    chk->note[0] = chk->why[0] = '\0';
    if (!tls->on)
        return grpc_insecure_credentials_create();
    grpc_channel_credentials *creds = NULL;
    char *root = pem_read("uplink.tls.ca", tls->ca, err, errlen);
    char *cert = root && tls->cert[0] ? pem_read("uplink.tls.cert", tls->cert, err, errlen) : NULL;
    char *key = cert ? pem_read("uplink.tls.key", tls->key, err, errlen) : NULL;
    if (cert && !key) { /* a key file that cannot be read: not a server-only setup */
        free(cert);
        cert = NULL;
    }
    if (key && check_cert(gateway_id, root, cert, key, chk->note, sizeof chk->note, chk->why,
                          sizeof chk->why) < 0) {
        snprintf(err, errlen, "%s", chk->note);
        pem_free(key);
        key = NULL;
        free(cert);
        cert = NULL;
    }
    if (root && (key || !tls->cert[0])) {
        grpc_ssl_pem_key_cert_pair pair = {key, cert};
        /* gRPC core copies the strings */
        creds = grpc_ssl_credentials_create_ex(root, key ? &pair : NULL, NULL, NULL);
        if (!creds)
            snprintf(err, errlen, "uplink.tls: gRPC refused the credentials");
    }
    free(root);
    free(cert);
    pem_free(key);
    return creds;
}
