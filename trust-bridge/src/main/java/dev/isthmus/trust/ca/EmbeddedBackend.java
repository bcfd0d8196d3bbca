package dev.isthmus.trust.ca;

import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.List;

/** The {@code embedded} CA backend: the trust domain's root on disk ({@link EmbeddedRoot}), signing in-process. */
public final class EmbeddedBackend implements CaBackend {

    private final EmbeddedRoot root;
    private final List<X509Certificate> others;

    public EmbeddedBackend(EmbeddedRoot root) {
        this(root, List.of());
    }

    /** @param others roots trusted besides the signing one (during a rotation: the next, or the retiring) */
    public EmbeddedBackend(EmbeddedRoot root, List<X509Certificate> others) {
        this.root = root;
        this.others = List.copyOf(others);
    }

    public EmbeddedRoot signingRoot() {
        return root;
    }

    @Override
    public String name() {
        return "embedded";
    }

    @Override
    public boolean signsInProcess() {
        return true;
    }

    @Override
    public List<X509Certificate> roots() {
        var all = new java.util.ArrayList<X509Certificate>();
        all.add(root.certificate());
        all.addAll(others);
        return List.copyOf(all);
    }

    @Override
    public Signed sign(String csrPem, java.security.PublicKey key, String spiffeId, Duration ttl) throws SvidIssuer.Refusal {
        var issued = SvidIssuer.sign(root, key, spiffeId, ttl);
        return new Signed(issued.certificate(), List.of(root.certificate()));
    }
}
