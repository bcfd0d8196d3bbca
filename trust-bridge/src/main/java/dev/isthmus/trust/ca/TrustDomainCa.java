package dev.isthmus.trust.ca;

import dev.isthmus.trust.TrustBridgeConfig;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
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
        switch (config.ca().backend()) {
            case "embedded" -> {
                var root = EmbeddedRoot.loadOrCreate(config.ca().dir(), trustDomain(), config.ca().rootTtl());
                backend = new EmbeddedBackend(root);
                lastError = "";
                LOG.infof("event=ca_ready trust_domain=%s backend=embedded root_expires=%s dir=%s", trustDomain(),
                        root.certificate().getNotAfter().toInstant(), config.ca().dir());
            }
            case "vault" -> retry.execute(() -> startVault(1));
            default -> throw new IllegalStateException("isthmus.ca.backend=" + config.ca().backend() + " is not known; use 'embedded' or 'vault'");
        }
    }

    private void startVault(int attempt) {
        try {
            var v = config.vault();
            String address = v.address().orElseThrow(() -> new IllegalStateException("isthmus.vault.address is not set"));
            var settings = new VaultBackend.Settings(address, secret(v.token(), v.tokenFile()), v.approle().roleId().orElse(null),
                    secret(v.approle().secretId(), v.approle().secretIdFile()), v.pkiMount().orElse("pki-isthmus-" + config.cluster().name()),
                    v.role(), v.kvMount(), v.provision(), config.ca().rootTtl());
            var vault = new VaultBackend(settings, trustDomain()).start();
            backend = vault;
            try {
                var pems = new StringBuilder();
                for (var r : vault.roots()) {
                    pems.append(java.util.Base64.getEncoder().encodeToString(r.getEncoded())).append(' ');
                }
                vault.storeBundle("{\"trust_domain\":\"" + trustDomain() + "\",\"x5c\":\"" + pems.toString().strip() + "\"}");
            } catch (SvidIssuer.Refusal e) {
                LOG.warnf("event=bundle_not_stored backend=vault cause=\"%s\"", e.getMessage());
            }
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

    private static String secret(Optional<String> value, Optional<Path> file) throws IOException {
        if (value.isPresent()) {
            return value.get().strip();
        }
        return file.isPresent() ? Files.readString(file.get()).strip() : null;
    }

    void stop(@Observes ShutdownEvent event) {
        retry.shutdownNow();
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
