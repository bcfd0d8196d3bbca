package dev.isthmus.trust.ca;

import dev.isthmus.trust.TrustBridgeConfig;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.quarkus.scheduler.Scheduled;
import jakarta.enterprise.event.Event;
import jakarta.inject.Inject;
import java.time.Instant;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.jboss.logging.Logger;

/**
 * The CA of this cluster's trust domain, behind the backend the configuration names. The embedded
 * backend is ready at start or the bridge does not start (a broken key on disk needs a person). The
 * Vault backend keeps trying in the background when Vault is away at start (1 s doubling to 60 s,
 * with jitter); meanwhile readiness is down and requests are answered {@code UNAVAILABLE}.
 */
@ApplicationScoped
public class TrustDomainCa {

    private static final Logger LOG = Logger.getLogger(TrustDomainCa.class);

    private final TrustBridgeConfig config;
    private volatile CaBackend backend;
    private volatile String lastError = "starting";
    private final ScheduledExecutorService retry = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("ca-backend").unstarted(r));

    public TrustDomainCa(TrustBridgeConfig config) {
        this.config = config;
    }

    void start(@Observes StartupEvent event) throws Exception {
        Files.createDirectories(config.ca().dir());
        rotation = loadRotation();
        switch (config.ca().backend()) {
            case "embedded" -> {
                Path dir = config.ca().dir();
                if (!EmbeddedRoot.exists(dir, "root") && EmbeddedRoot.exists(dir, "next-root") && EmbeddedRoot.exists(dir, "retiring-root")) {
                    EmbeddedRoot.rename(dir, "next-root", "root"); // a switch interrupted between its two renames
                }
                rebuildEmbedded();
                var root = ((EmbeddedBackend) backend).signingRoot();
                lastError = "";
                LOG.infof("event=ca_ready trust_domain=%s backend=embedded root_expires=%s dir=%s rotation=%s", trustDomain(),
                        root.certificate().getNotAfter().toInstant(), config.ca().dir(), rotation.phase());
            }
            case "vault" -> retry.execute(() -> startVault(1));
            default -> throw new IllegalStateException("isthmus.ca.backend=" + config.ca().backend() + " is not known; use 'embedded' or 'vault'");
        }
    }

    private void startVault(int attempt) {
        try {
            var v = config.vault();
            String address = v.address().orElseThrow(() -> new IllegalStateException("isthmus.vault.address is not set"));
            var settings = new VaultBackend.Settings(address, dev.isthmus.trust.Secrets.read(v.token(), v.tokenFile(), false), v.approle().roleId().orElse(null),
                    dev.isthmus.trust.Secrets.read(v.approle().secretId(), v.approle().secretIdFile(), false), v.pkiMount().orElse("pki-isthmus-" + config.cluster().name()),
                    v.role(), v.kvMount(), v.provision(), config.ca().rootTtl());
            var vault = new VaultBackend(settings, trustDomain()).start();
            backend = vault;
            lastError = "";
            LOG.infof("event=ca_ready trust_domain=%s backend=vault address=%s mount=%s", trustDomain(), address, settings.pkiMount());
        } catch (Exception e) {
            lastError = e.getMessage();
            long delay = Math.min(60_000, 1000L << Math.min(attempt - 1, 6));
            delay += (long) (delay * 0.2 * ThreadLocalRandom.current().nextDouble());
            LOG.warnf("event=ca_backend_unavailable backend=vault attempt=%d retry_in_ms=%d cause=\"%s\"", attempt, delay, e.getMessage());
            retry.schedule(() -> startVault(attempt + 1), delay, TimeUnit.MILLISECONDS);
        }
    }

    void stop(@Observes ShutdownEvent event) {
        retry.shutdownNow();
    }

    // ----- root rotation -----

    /**
     * The rotation state: {@code Stable} (one root); {@code Distributing} (a new root is in every
     * bundle, the old one still signs, until {@code switchAt}); {@code Issuing} (the new root signs,
     * the old one stays in the bundle until {@code retireAt}, the longest certificate lifetime later).
     *
     * @param sequence increases with every change of the bundle
     * @param nextIssuer with the Vault backend, the new root's issuer id on the PKI mount
     */
    public record Rotation(String phase, Instant startedAt, Instant switchAt, Instant retireAt, long sequence, String nextIssuer) {
        static Rotation stable(long sequence) {
            return new Rotation("Stable", null, null, null, sequence, null);
        }
    }

    /** Fired when the roots in the bundle change. */
    public record BundleChanged(long sequence) {
    }

    @Inject
    ObjectMapper json;
    @Inject
    Event<BundleChanged> bundleChanged;
    private volatile Rotation rotation = Rotation.stable(1);

    public Rotation rotation() {
        return rotation;
    }

    private Path rotationFile() {
        return config.ca().dir().resolve("rotation.json");
    }

    private Rotation loadRotation() throws IOException {
        return Files.exists(rotationFile()) ? json.readValue(rotationFile().toFile(), Rotation.class) : Rotation.stable(1);
    }

    private void saveRotation(Rotation r) throws IOException {
        Path tmp = rotationFile().resolveSibling("rotation.json.tmp");
        json.writeValue(tmp.toFile(), r);
        Files.move(tmp, rotationFile(), java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        rotation = r;
    }

    private void rebuildEmbedded() throws Exception {
        Path dir = config.ca().dir();
        var root = EmbeddedRoot.loadOrCreate(dir, "root", trustDomain(), config.ca().rootTtl());
        var others = new java.util.ArrayList<java.security.cert.X509Certificate>();
        for (String extra : java.util.List.of("next-root", "retiring-root")) {
            if (EmbeddedRoot.exists(dir, extra)) {
                others.add(EmbeddedRoot.loadOrCreate(dir, extra, trustDomain(), config.ca().rootTtl()).certificate());
            }
        }
        backend = new EmbeddedBackend(root, others);
    }

    /**
     * Starts a rotation: a new root goes into every bundle now and signs after the distribution
     * period. Embedded: {@code next-root-*.pem} in the CA dir. Vault: a second issuer on the PKI
     * mount (see {@link VaultBackend#addNextRoot}). The phase is kept in {@code rotation.json} in the
     * CA dir with either backend.
     */
    public synchronized Rotation rotate() throws Exception {
        if (!rotation.phase().equals("Stable")) {
            throw new IllegalStateException("a rotation is already under way (phase " + rotation.phase() + ", started "
                    + rotation.startedAt() + "); wait for it to finish");
        }
        CaBackend b = backend;
        if (b == null) {
            throw new IllegalStateException("the CA backend is not ready (" + lastError + "); a rotation needs it");
        }
        Instant now = Instant.now();
        String nextIssuer = null;
        if (b instanceof VaultBackend vault) {
            try {
                nextIssuer = vault.addNextRoot();
            } catch (io.github.jopenlibs.vault.VaultException e) {
                throw new IllegalStateException("Vault did not make the next root: " + e.getMessage(), e);
            }
        } else {
            EmbeddedRoot.loadOrCreate(config.ca().dir(), "next-root", trustDomain(), config.ca().rootTtl());
        }
        // the roots first, then the sequence: a bundle built between the two must not carry the new
        // sequence with the old roots (it would be cached and pushed as the new bundle)
        if (!(b instanceof VaultBackend)) {
            rebuildEmbedded();
        }
        saveRotation(new Rotation("Distributing", now, now.plus(config.ca().rotation().distributionPeriod()), null, rotation.sequence() + 1,
                nextIssuer));
        LOG.infof("event=root_rotation phase=Distributing backend=%s switch_at=%s", b.name(), rotation.switchAt());
        bundleChanged.fire(new BundleChanged(rotation.sequence()));
        return rotation;
    }

    private volatile String rotationError = "";

    /** Why the last step of a rotation failed (Vault away), empty when it did not. */
    public String rotationError() {
        return rotationError;
    }

    /** Moves a rotation on when its time comes; a step that fails (Vault away) is tried again a second later. */
    @Scheduled(every = "1s", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    synchronized void advance() throws Exception {
        Rotation r = rotation;
        Instant now = Instant.now();
        Path dir = config.ca().dir();
        CaBackend b = backend;
        if (b == null || r.phase().equals("Stable")) {
            return;
        }
        try {
            if (r.phase().equals("Distributing") && !now.isBefore(r.switchAt())) {
                if (b instanceof VaultBackend vault) {
                    vault.switchTo(r.nextIssuer());
                } else {
                    EmbeddedRoot.rename(dir, "root", "retiring-root");
                    EmbeddedRoot.rename(dir, "next-root", "root");
                }
                if (!(b instanceof VaultBackend)) {
                    rebuildEmbedded(); // the roots before the sequence, as in rotate()
                }
                saveRotation(new Rotation("Issuing", r.startedAt(), r.switchAt(), now.plus(config.ca().maxSvidTtl()), r.sequence() + 1,
                        r.nextIssuer()));
                LOG.infof("event=root_rotation phase=Issuing retire_at=%s", rotation.retireAt());
                bundleChanged.fire(new BundleChanged(rotation.sequence()));
            } else if (r.phase().equals("Issuing") && !now.isBefore(r.retireAt())) {
                if (b instanceof VaultBackend vault) {
                    vault.retireOldRoots();
                } else {
                    EmbeddedRoot.rename(dir, "retiring-root", "retired-" + now.getEpochSecond() + "-root");
                }
                if (!(b instanceof VaultBackend)) {
                    rebuildEmbedded(); // the roots before the sequence, as in rotate()
                }
                saveRotation(Rotation.stable(r.sequence() + 1));
                LOG.infof("event=root_rotation phase=Stable (old root retired)");
                bundleChanged.fire(new BundleChanged(rotation.sequence()));
            }
            rotationError = "";
        } catch (io.github.jopenlibs.vault.VaultException e) {
            if (!e.getMessage().equals(rotationError)) {
                LOG.warnf("event=root_rotation_step_failed phase=%s cause=\"%s\" (tried again every second)", r.phase(), e.getMessage());
            }
            rotationError = e.getMessage();
        }
    }

    private volatile String backendProblem = "";

    /** Checks Vault every 5 s (Vault's health endpoint), so health says "degraded" before a renewal fails. */
    @Scheduled(every = "5s", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void probeBackend() {
        if (backend instanceof VaultBackend vault) {
            String problem = vault.probe();
            if (!problem.equals(backendProblem)) {
                if (problem.isEmpty()) {
                    LOG.infof("event=ca_backend_recovered backend=vault");
                } else {
                    LOG.warnf("event=ca_backend_degraded backend=vault cause=\"%s\" (certificates already issued keep working)", problem);
                }
            }
            backendProblem = problem;
        }
    }

    /** Why the ready backend cannot sign right now (Vault away or sealed), empty when it can. */
    public String backendProblem() {
        return backendProblem;
    }

    public String trustDomain() {
        return config.cluster().trustDomain().orElse(config.cluster().name() + "." + config.federation() + ".isthmus");
    }

    /** The backend, once it is ready. */
    public Optional<CaBackend> backend() {
        return Optional.ofNullable(backend);
    }

    /** Why the backend is not ready, empty when it is. */
    public String lastError() {
        return lastError;
    }
}
