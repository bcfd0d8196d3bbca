package dev.isthmus.controller.federation;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.names.ClusterName;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.membership.FederationBus;
import dev.isthmus.controller.membership.Membership;
import dev.isthmus.controller.membership.Roster;
import io.quarkus.runtime.StartupEvent;
import io.quarkus.scheduler.Scheduled;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import org.jboss.logging.Logger;

/**
 * Federation of trust roots: the controller reads its trust bridge's bundle (SPIFFE bundle JSON),
 * publishes it, signed like every bus message, on {@code trust-bundle.<cluster>} when it changes,
 * every 10 s and when a member joins; it keeps every member's bundle (on disk too, under
 * {@code <state-dir>/bundles/}) and drops it when the member leaves or is evicted. The trust bridge
 * reads them back from {@code GET /api/v1/trust/federated-bundles} and adds them to the bundle it
 * gives its proxies.
 */
@ApplicationScoped
public class TrustBundles {

    private static final Logger LOG = Logger.getLogger(TrustBundles.class);

    private final ControllerConfig config;
    private final FederationBus bus;
    private final Membership membership;
    private final ObjectMapper json;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(2)).build();
    private final Map<String, JsonNode> byCluster = new ConcurrentHashMap<>();
    private volatile String own;
    private volatile long lastPublished;

    public TrustBundles(ControllerConfig config, FederationBus bus, Membership membership, ObjectMapper json) {
        this.config = config;
        this.bus = bus;
        this.membership = membership;
        this.json = json;
    }

    private Path dir() {
        return config.stateDir().resolve("bundles");
    }

    void start(@Observes StartupEvent event) {
        var roster = membership.roster();
        if (roster.isPresent() && Files.isDirectory(dir())) {
            try (var files = Files.list(dir())) {
                for (Path f : files.filter(p -> p.toString().endsWith(".json")).toList()) {
                    String cluster = f.getFileName().toString().replace(".json", "");
                    if (roster.get().isActive(cluster)) {
                        byCluster.put(cluster, json.readTree(f.toFile()));
                    }
                }
            } catch (IOException e) {
                LOG.warnf("event=bundles_not_restored dir=%s cause=%s", dir(), e.getMessage());
            }
        }
        bus.on("trust-bundle", msg -> {
            JsonNode bundle;
            try {
                bundle = json.readTree(msg.data());
            } catch (IOException e) {
                throw new IllegalArgumentException("trust bundle is not JSON: " + e.getMessage());
            }
            if (!bundle.path("trust_domain").isTextual() || !bundle.path("keys").isArray()) {
                throw new IllegalArgumentException("trust bundle of " + msg.sender() + " lacks trust_domain or keys");
            }
            JsonNode old = byCluster.put(msg.sender(), bundle);
            if (!bundle.equals(old)) {
                LOG.infof("event=trust_bundle_received cluster=%s trust_domain=%s roots=%d", msg.sender(), bundle.path("trust_domain").asText(),
                        bundle.path("keys").size());
                save(msg.sender(), bundle);
            }
        });
    }

    private void save(String cluster, JsonNode bundle) {
        try {
            Files.createDirectories(dir());
            json.writeValue(dir().resolve(ClusterName.of(cluster).value() + ".json").toFile(), bundle);
        } catch (IOException | IllegalArgumentException e) {
            LOG.warnf("event=bundle_not_saved cluster=%s cause=%s", cluster, e.getMessage());
        }
    }

    void onMembership(@Observes Membership.MembershipChanged change) {
        if (change.selfLeft()) {
            byCluster.clear();
            deleteQuietly(null);
            return;
        }
        boolean newcomer = false;
        for (Roster.Member m : change.changed()) {
            if (!m.active()) {
                if (byCluster.remove(m.cluster()) != null) {
                    LOG.infof("event=trust_bundle_withdrawn cluster=%s reason=\"%s\"", m.cluster(), m.leftReason());
                }
                deleteQuietly(m.cluster());
            } else {
                newcomer = true;
            }
        }
        if (newcomer) {
            lastPublished = 0;
        }
    }

    private void deleteQuietly(String cluster) {
        try {
            if (cluster != null) {
                Files.deleteIfExists(dir().resolve(cluster + ".json"));
            } else if (Files.isDirectory(dir())) {
                try (var files = Files.list(dir())) {
                    for (Path f : files.toList()) {
                        Files.deleteIfExists(f);
                    }
                }
            }
        } catch (IOException e) {
            LOG.warnf("event=bundle_not_deleted cluster=%s cause=%s", cluster, e.getMessage());
        }
    }

    /** Reads the bridge's bundle; publishes it when it changed, every 10 s, and after a member joined. */
    @Scheduled(every = "2s", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void refresh() {
        if (config.trustBridgeUrl().isEmpty() || membership.roster().isEmpty()) {
            return;
        }
        String fresh;
        try {
            var res = http.send(HttpRequest.newBuilder(URI.create(config.trustBridgeUrl().get()).resolve("/api/v1/trust/bundle"))
                    .timeout(Duration.ofSeconds(3)).build(), HttpResponse.BodyHandlers.ofString());
            if (res.statusCode() != 200) {
                return;
            }
            fresh = json.readTree(res.body()).toString();
        } catch (IOException e) {
            return;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return;
        }
        long now = System.currentTimeMillis();
        if (!fresh.equals(own) || now - lastPublished > 10_000) {
            if (!fresh.equals(own)) {
                LOG.infof("event=own_trust_bundle_changed");
            }
            own = fresh;
            if (bus.publish(bus.own("trust-bundle"), fresh.getBytes(StandardCharsets.UTF_8))) {
                lastPublished = now;
            }
        }
    }

    /** Every member's bundle (not this cluster's own), by trust domain. */
    public Map<String, JsonNode> members() {
        var out = new TreeMap<String, JsonNode>();
        var roster = membership.roster();
        byCluster.forEach((cluster, bundle) -> {
            if (roster.isPresent() && roster.get().isActive(cluster)) {
                out.put(bundle.path("trust_domain").asText(), bundle);
            }
        });
        return out;
    }
}
