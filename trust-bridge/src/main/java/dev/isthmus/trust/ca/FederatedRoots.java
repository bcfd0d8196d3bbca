package dev.isthmus.trust.ca;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.trust.TrustBridgeConfig;
import io.quarkus.scheduler.Scheduled;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Event;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;
import org.jboss.logging.Logger;

/**
 * The other members' trust roots, as this cluster's controller received them (signed) over the
 * federation's bus: read from {@code <isthmus.controller.url>/api/v1/trust/federated-bundles} every
 * 2 s. A change (a member joined, rotated its root, left) bumps {@link #version} and fires a bundle
 * change, so the bundle watch pushes it to every proxy. With the Vault backend the federated bundle
 * is also written to KV, so a restarted bridge has it while the controller or NATS is away.
 */
@ApplicationScoped
public class FederatedRoots {

    private static final Logger LOG = Logger.getLogger(FederatedRoots.class);

    private final TrustBridgeConfig config;
    private final TrustDomainCa ca;
    private final ObjectMapper json;
    private final Event<TrustDomainCa.BundleChanged> changed;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(2)).build();
    private final AtomicLong version = new AtomicLong();
    private volatile Map<String, List<X509Certificate>> roots = Map.of();
    private volatile String lastBody = "";

    public FederatedRoots(TrustBridgeConfig config, TrustDomainCa ca, ObjectMapper json, Event<TrustDomainCa.BundleChanged> changed) {
        this.config = config;
        this.ca = ca;
        this.json = json;
        this.changed = changed;
    }

    /** Other trust domains' roots. */
    public Map<String, List<X509Certificate>> roots() {
        return roots;
    }

    /** Increases with every change of {@link #roots}. */
    public long version() {
        return version.get();
    }

    private volatile boolean controllerReached;
    private volatile boolean restoredFromVault;
    private volatile String lastError = "";

    /** True once the controller has answered since start. */
    public boolean controllerReached() {
        return controllerReached;
    }

    /** Why the last read from the controller failed, empty when it did not. */
    public String lastError() {
        return lastError;
    }

    @Scheduled(every = "2s", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void refresh() {
        if (config.controller().url().isEmpty()) {
            return;
        }
        String body;
        try {
            var res = http.send(HttpRequest.newBuilder(URI.create(config.controller().url().get()).resolve("/api/v1/trust/federated-bundles"))
                    .timeout(Duration.ofSeconds(3)).build(), HttpResponse.BodyHandlers.ofString());
            if (res.statusCode() != 200) {
                lastError = "the controller answered " + res.statusCode();
                restoreFromVault();
                return;
            }
            body = res.body();
            controllerReached = true;
            lastError = "";
        } catch (IOException e) {
            lastError = "the controller is unreachable: " + e;
            restoreFromVault(); // keep what we have; after a restart, what Vault kept
            return;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return;
        }
        if (body.equals(lastBody)) {
            return;
        }
        if (apply(body, "controller")) {
            ca.backend().ifPresent(b -> {
                try {
                    b.storeBundle(body);
                } catch (SvidIssuer.Refusal r) {
                    LOG.warnf("event=federated_bundle_not_stored cause=\"%s\"", r.getMessage());
                }
            });
        }
    }

    /**
     * With the Vault backend, before the controller has ever answered: takes the federated bundle
     * last kept in Vault KV, so proxies trust the other members at once after a restart while the
     * controller or NATS is away.
     */
    private void restoreFromVault() {
        if (controllerReached || restoredFromVault || !(ca.backend().orElse(null) instanceof VaultBackend vault)) {
            return;
        }
        try {
            String kept = vault.loadBundle();
            restoredFromVault = true;
            if (kept != null && !kept.isBlank() && apply(kept, "vault-kv")) {
                LOG.infof("event=federated_roots_restored source=vault-kv trust_domains=%s", roots.keySet());
            }
        } catch (Exception e) {
            LOG.warnf("event=federated_bundle_not_restored source=vault-kv cause=\"%s\"", e.getMessage());
        }
    }

    /** Parses a federated bundle document ({@code {"<trust domain>": {"keys": [{"x5c": [...]}]}}}); false if unreadable. */
    private synchronized boolean apply(String body, String source) {
        try {
            var next = new TreeMap<String, List<X509Certificate>>();
            JsonNode all = json.readTree(body);
            var factory = CertificateFactory.getInstance("X.509");
            for (var it = all.fields(); it.hasNext(); ) {
                var e = it.next();
                if (e.getKey().equals(ca.trustDomain())) {
                    continue;
                }
                var certs = new ArrayList<X509Certificate>();
                for (JsonNode key : e.getValue().path("keys")) {
                    for (JsonNode x5c : key.path("x5c")) {
                        certs.add((X509Certificate) factory.generateCertificate(new ByteArrayInputStream(Base64.getDecoder().decode(x5c.asText()))));
                    }
                }
                next.put(e.getKey(), List.copyOf(certs));
            }
            lastBody = body;
            roots = Map.copyOf(next);
            long v = version.incrementAndGet();
            LOG.infof("event=federated_roots_changed source=%s trust_domains=%s version=%d", source, next.keySet(), v);
            changed.fire(new TrustDomainCa.BundleChanged(v));
            return true;
        } catch (Exception e) {
            LOG.warnf("event=federated_bundles_unreadable source=%s cause=%s", source, e.getMessage());
            return false;
        }
    }
}
