package dev.isthmus.trust.ca;

import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.List;

/** The {@code embedded} CA backend: the trust domain's root on disk ({@link EmbeddedRoot}), signing in-process. */
public final class EmbeddedBackend implements CaBackend {

    private final EmbeddedRoot root;

    public EmbeddedBackend(EmbeddedRoot root) {
        this.root = root;
    }

    @Override
    public String name() {
        return "embedded";
    }

    @Override
    public List<X509Certificate> roots() {
        return List.of(root.certificate());
    }

    @Override
    public Signed sign(String csrPem, String spiffeId, Duration ttl) throws SvidIssuer.Refusal {
        var issued = SvidIssuer.issue(root, csrPem, spiffeId, ttl);
        return new Signed(issued.certificate(), List.of(root.certificate()));
    }
}
