package dev.isthmus.trust.ca;

import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.List;

/**
 * Where a trust domain's certificates are signed: {@code embedded} (a root kept on disk, signing
 * in-process) or {@code vault} (Vault's PKI secrets engine). Requests reach a backend only after
 * {@link SvidIssuer#checkCsr} accepted them.
 */
public interface CaBackend {

    /** A signed certificate and the chain above it up to the root, leaf-most first. */
    record Signed(X509Certificate certificate, List<X509Certificate> chain) {
    }

    String name();

    /**
     * True when signing is CPU work in this process only (no I/O): the gRPC service then signs on
     * the transport thread, as a TLS handshake would, instead of hopping to a worker.
     */
    default boolean signsInProcess() {
        return false;
    }

    /** The trust domain's current root certificates (more than one during a rotation). */
    List<X509Certificate> roots();

    /** Signs a CSR already checked by {@link SvidIssuer#checkCsr} (which gave {@code key}) for {@code spiffeId}. */
    Signed sign(String csrPem, java.security.PublicKey key, String spiffeId, Duration ttl) throws SvidIssuer.Refusal;

    /** Where the federated bundle is kept when NATS is away: a no-op for the embedded backend. */
    default void storeBundle(String bundleJson) throws SvidIssuer.Refusal {
    }
}
