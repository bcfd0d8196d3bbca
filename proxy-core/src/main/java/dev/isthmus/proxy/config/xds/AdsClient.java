package dev.isthmus.proxy.config.xds;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageLite;
import dev.isthmus.xds.envoy.config.cluster.v3.Cluster;
import dev.isthmus.xds.envoy.config.core.v3.Node;
import dev.isthmus.xds.envoy.config.endpoint.v3.ClusterLoadAssignment;
import dev.isthmus.xds.envoy.config.listener.v3.Listener;
import dev.isthmus.xds.envoy.service.discovery.v3.DiscoveryRequest;
import dev.isthmus.xds.envoy.service.discovery.v3.DiscoveryResponse;
import dev.isthmus.xds.google.protobuf.Any;
import dev.isthmus.proxy.grpc.GrpcClient;
import dev.isthmus.proxy.grpc.GrpcStatus;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An xDS v3 client over ADS (state of the world): subscribes to every Listener, Cluster and
 * ClusterLoadAssignment for its node, translates the whole set with {@link XdsTranslator} and hands
 * it to the proxy. A set the translator or the proxy refuses is NACKed (the previous version and an
 * {@code error_detail} whose message lists every error by resource and field) and the proxy keeps
 * running what it had; an accepted set is ACKed and written to {@code lastGoodFile}, which is applied
 * at start, so a proxy restarted while the controller is away serves its last good config.
 *
 * <p>Listeners and clusters are processed together: until both have arrived once, responses are
 * held (not ACKed) so a listener is not refused for a cluster still on its way; a cluster removed
 * while the listeners in force still route to it is kept until they no longer do
 * ({@link #withHeldClusters}). A broken stream is
 * reopened after 1 s doubling to 30 s, with jitter, re-sending the versions it holds.
 */
public final class AdsClient implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(AdsClient.class);

    public static final String LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener";
    public static final String CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    public static final String ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    private static final List<String> TYPES = List.of(CLUSTER, ENDPOINT, LISTENER);

    /** Applies an accepted config; throwing refuses it (for example a listener port that cannot be bound). */
    public interface Applier {
        void apply(ProxyConfig config) throws Exception;
    }

    private final Node node;
    private final Path lastGoodFile;
    private final Applier applier;
    /** The ADS method, as Envoy's {@code ads.proto} names it ({@code HonouredProtosTest} checks it against Envoy's service descriptor). */
    public static final String METHOD = "envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

    private final GrpcClient client;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("ads-client").unstarted(r));
    private final Counter accepted;
    private final MeterRegistry meters;

    // All below are touched on the timer thread only (gRPC callbacks hop onto it).
    private final Map<String, List<? extends MessageLite>> current = new LinkedHashMap<>();
    /** What the proxy runs: {@link #current} and the clusters whose removal waits for the listeners ({@link #withHeldClusters}). */
    private final Map<String, List<? extends MessageLite>> applied = new LinkedHashMap<>();
    private final Map<String, String> versions = new LinkedHashMap<>();
    private final Map<String, List<? extends MessageLite>> pending = new LinkedHashMap<>();
    private final List<DiscoveryResponse> held = new ArrayList<>();
    private GrpcClient.Call<DiscoveryRequest> requests;
    private int failures;
    private volatile String lastError = "";
    private volatile String appliedVersion = "";
    private volatile boolean closed;

    /**
     * @param target host:port of the controller's xDS server
     * @param lastGoodFile where the last accepted set is kept (null: not kept)
     */
    public AdsClient(String target, Node node, Path lastGoodFile, Applier applier, MeterRegistry meters) {
        this.node = node;
        this.lastGoodFile = lastGoodFile;
        this.applier = applier;
        this.meters = meters;
        this.client = new GrpcClient(target);
        this.accepted = Counter.builder("isthmus_xds_accepted").description("xDS responses applied and ACKed").register(meters);
        for (String type : TYPES) { // at 0 before the first refusal, so that a dashboard shows 0 and rate() sees the first one
            Counter.builder("isthmus_xds_rejected").tag("type", shortType(type)).register(meters);
        }
    }

    /** Applies the last good config kept on disk (if any), then opens the stream. */
    public void start() {
        timer.execute(() -> {
            loadLastGood();
            connect();
        });
    }

    /** The version of the config applied last (for each type, joined), empty before the first. */
    public String appliedVersion() {
        return appliedVersion;
    }

    /** Why the last response was refused, or why the stream is down; empty when neither. */
    public String lastError() {
        return lastError;
    }

    private void connect() {
        if (closed) {
            return;
        }
        held.clear();
        pending.clear();
        requests = client.call(METHOD, DiscoveryResponse.parser(), null, new GrpcClient.Listener<DiscoveryResponse>() {
            @Override
            public void onMessage(DiscoveryResponse response) {
                later(() -> onResponse(response));
            }

            @Override
            public void onClose(GrpcStatus status) {
                later(() -> reconnect(status.isOk() ? "the server closed the stream" : status.toString()));
            }
        });
        for (String type : TYPES) {
            requests.send(DiscoveryRequest.newBuilder().setNode(node).setTypeUrl(type).setVersionInfo(versions.getOrDefault(type, "")).build());
        }
        log.info("event=xds_stream_opened node={} versions={}", node.getId(), versions);
    }

    private void later(Runnable task) {
        if (!closed) {
            try {
                timer.execute(task);
            } catch (java.util.concurrent.RejectedExecutionException e) {
                // closing
            }
        }
    }

    private void reconnect(String why) {
        if (closed) {
            return;
        }
        failures++;
        lastError = "xDS stream down: " + why;
        long base = Math.min(30_000, 1000L << Math.min(failures - 1, 5));
        long delay = base + (long) (base * 0.2 * ThreadLocalRandom.current().nextDouble());
        log.warn("event=xds_stream_down cause=\"{}\" retry_in_ms={} serving_version=\"{}\"", why, delay, appliedVersion);
        timer.schedule(this::connect, delay, TimeUnit.MILLISECONDS);
    }

    private void onResponse(DiscoveryResponse response) {
        failures = 0;
        String type = response.getTypeUrl();
        if (!TYPES.contains(type)) {
            nack(response, "type " + type + " is not subscribed to");
            return;
        }
        List<MessageLite> resources = new ArrayList<>();
        try {
            for (Any any : response.getResourcesList()) {
                resources.add(unpack(type, any));
            }
        } catch (InvalidProtocolBufferException e) {
            nack(response, type + ": a resource cannot be read: " + e.getMessage());
            return;
        }
        pending.put(type, resources);
        held.add(response);
        boolean haveBoth = (current.containsKey(LISTENER) || pending.containsKey(LISTENER))
                && (current.containsKey(CLUSTER) || pending.containsKey(CLUSTER));
        if (!haveBoth) {
            return; // wait for the other half before judging
        }
        var next = new LinkedHashMap<>(current);
        next.putAll(pending);
        var responses = List.copyOf(held);
        held.clear();
        pending.clear();
        String version = responses.stream().map(r -> shortType(r.getTypeUrl()) + "=" + r.getVersionInfo()).reduce((a, b) -> a + "," + b).orElse("");
        boolean listenersInForce = responses.stream().noneMatch(r -> r.getTypeUrl().equals(LISTENER));
        try {
            Map<String, List<? extends MessageLite>> run = next;
            ProxyConfig config;
            try {
                config = translate(version, next);
            } catch (XdsTranslator.ConfigException e) {
                run = listenersInForce ? withHeldClusters(next) : null;
                if (run == null) {
                    throw e;
                }
                try {
                    config = translate(version, run);
                } catch (XdsTranslator.ConfigException stillRefused) {
                    throw e; // the reasons of the set as the server sent it
                }
                var kept = new ArrayList<>(names(run.get(CLUSTER)));
                kept.removeAll(names(next.get(CLUSTER)));
                if (!kept.equals(heldLogged)) { // once per held set, not again on each assignment update meanwhile
                    log.info("event=xds_cluster_removal_deferred clusters={} reason=\"the listeners in force still route to them: {}{}\"", kept,
                            e.errors().get(0), e.errors().size() > 1 ? " (and " + (e.errors().size() - 1) + " more)" : "");
                    heldLogged = kept;
                }
            }
            if (run == next) {
                heldLogged = List.of();
            }
            applier.apply(config);
            current.clear();
            current.putAll(next);
            applied.clear();
            applied.putAll(run);
            for (var r : responses) {
                versions.put(r.getTypeUrl(), r.getVersionInfo());
                requests.send(DiscoveryRequest.newBuilder().setNode(node).setTypeUrl(r.getTypeUrl()).setVersionInfo(r.getVersionInfo())
                        .setResponseNonce(r.getNonce()).build());
                accepted.increment();
            }
            appliedVersion = versions.toString();
            lastError = "";
            lastNacked.clear();
            saveLastGood();
            log.info("event=xds_applied versions={} listeners={} clusters={}", versions, config.listeners().size(), config.clusters().size());
        } catch (XdsTranslator.ConfigException e) {
            responses.forEach(r -> nack(r, String.join("; ", e.errors())));
        } catch (Exception e) {
            responses.forEach(r -> nack(r, "the proxy could not apply it: " + e.getMessage()));
        }
    }

    /**
     * The server's set {@code next} plus the clusters (and their assignments) that the proxy runs now
     * and {@code next} removes; null when it removes none. A server that removes a cluster and the
     * routes to it in one change may send the Cluster response first (state-of-the-world ADS gives no
     * order between types; java-control-plane's cache answers clusters first): the listeners in force
     * still route to the cluster until the Listener response comes. Envoy accepts such a CDS update
     * and answers 503 on those routes meanwhile; this client keeps the cluster, and drops it with the
     * first set that translates without it (usually the next Listener response).
     */
    private Map<String, List<? extends MessageLite>> withHeldClusters(Map<String, List<? extends MessageLite>> next) {
        var names = names(next.get(CLUSTER));
        var gone = new ArrayList<Cluster>();
        for (var c : applied.getOrDefault(CLUSTER, List.of())) {
            if (!names.contains(((Cluster) c).getName())) {
                gone.add((Cluster) c);
            }
        }
        if (gone.isEmpty()) {
            return null;
        }
        var goneNames = names(gone);
        var assigned = new java.util.HashSet<String>();
        for (var a : next.getOrDefault(ENDPOINT, List.of())) {
            assigned.add(((ClusterLoadAssignment) a).getClusterName());
        }
        var assignments = new ArrayList<MessageLite>(next.getOrDefault(ENDPOINT, List.of()));
        for (var a : applied.getOrDefault(ENDPOINT, List.of())) {
            String cluster = ((ClusterLoadAssignment) a).getClusterName();
            if (goneNames.contains(cluster) && !assigned.contains(cluster)) {
                assignments.add(a);
            }
        }
        var clusters = new ArrayList<MessageLite>(next.getOrDefault(CLUSTER, List.of()));
        clusters.addAll(gone);
        var out = new LinkedHashMap<>(next);
        out.put(CLUSTER, clusters);
        out.put(ENDPOINT, assignments);
        return out;
    }

    private static java.util.Set<String> names(List<? extends MessageLite> clusters) {
        var out = new java.util.LinkedHashSet<String>();
        for (var c : clusters == null ? List.<MessageLite>of() : clusters) {
            out.add(((Cluster) c).getName());
        }
        return out;
    }

    /** The clusters held when that was last logged. */
    private List<String> heldLogged = List.of();
    private final Map<String, String> lastNacked = new LinkedHashMap<>();
    private final Map<String, Integer> repeatedNacks = new LinkedHashMap<>();

    /**
     * NACKs {@code r}. A server that sends the same refused version again at once (some resend
     * whenever the version in a request differs from theirs) is answered after a growing pause
     * (0.5 s doubling to 30 s), so a bad config does not become a busy loop for either side.
     */
    private void nack(DiscoveryResponse r, String reason) {
        String key = r.getTypeUrl();
        int repeats = r.getVersionInfo().equals(lastNacked.get(key)) ? repeatedNacks.merge(key, 1, Integer::sum) : 0;
        lastNacked.put(key, r.getVersionInfo());
        if (repeats == 0) {
            repeatedNacks.put(key, 0);
            sendNack(r, reason, true);
        } else {
            long delay = Math.min(30_000, 500L << Math.min(repeats - 1, 6));
            timer.schedule(() -> sendNack(r, reason, false), delay, TimeUnit.MILLISECONDS);
        }
    }

    private void sendNack(DiscoveryResponse r, String reason, boolean first) {
        if (closed) {
            return;
        }
        Counter.builder("isthmus_xds_rejected").tag("type", shortType(r.getTypeUrl())).register(meters).increment();
        lastError = "refused " + shortType(r.getTypeUrl()) + " version " + r.getVersionInfo() + ": " + reason;
        if (first) {
            log.warn("event=xds_nack type={} version={} nonce={} reason=\"{}\" keeping=\"{}\"", shortType(r.getTypeUrl()), r.getVersionInfo(),
                    r.getNonce(), reason, appliedVersion);
        }
        requests.send(DiscoveryRequest.newBuilder().setNode(node).setTypeUrl(r.getTypeUrl()).setVersionInfo(versions.getOrDefault(r.getTypeUrl(), ""))
                .setResponseNonce(r.getNonce()).setErrorDetail(dev.isthmus.xds.google.rpc.Status.newBuilder().setCode(GrpcStatus.INVALID_ARGUMENT)
                        .setMessage(reason)).build());
    }

    private static String shortType(String typeUrl) {
        return typeUrl.substring(typeUrl.lastIndexOf('.') + 1);
    }

    private static MessageLite unpack(String type, Any any) throws InvalidProtocolBufferException {
        if (type.equals(LISTENER)) {
            return XdsTranslator.unpack(any, type, Listener.parser());
        }
        if (type.equals(CLUSTER)) {
            return XdsTranslator.unpack(any, type, Cluster.parser());
        }
        return XdsTranslator.unpack(any, type, ClusterLoadAssignment.parser());
    }

    @SuppressWarnings("unchecked")
    private static ProxyConfig translate(String version, Map<String, List<? extends MessageLite>> all) throws XdsTranslator.ConfigException {
        return XdsTranslator.translate(version, (List<Listener>) all.getOrDefault(LISTENER, List.of()), (List<Cluster>) all.getOrDefault(CLUSTER, List.of()),
                (List<ClusterLoadAssignment>) all.getOrDefault(ENDPOINT, List.of()));
    }

    // ----- last good config on disk: one length-delimited DiscoveryResponse per type (its version and the resources applied) -----
    // Protobuf's binary form, as the resources came: the lite messages have no JSON printer, and the
    // file is read only at start.

    private void saveLastGood() {
        if (lastGoodFile == null) {
            return;
        }
        try {
            var out = new java.io.ByteArrayOutputStream();
            for (var e : applied.entrySet()) { // what runs, held clusters too: the listeners saved route to them
                var r = DiscoveryResponse.newBuilder().setTypeUrl(e.getKey()).setVersionInfo(versions.getOrDefault(e.getKey(), ""));
                for (MessageLite m : e.getValue()) {
                    r.addResources(Any.newBuilder().setTypeUrl(e.getKey()).setValue(m.toByteString()));
                }
                r.build().writeDelimitedTo(out);
            }
            Files.createDirectories(lastGoodFile.toAbsolutePath().getParent());
            Path tmp = lastGoodFile.resolveSibling(lastGoodFile.getFileName() + ".tmp");
            Files.write(tmp, out.toByteArray());
            Files.move(tmp, lastGoodFile, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            log.warn("event=xds_last_good_not_saved file={} cause=\"{}\"", lastGoodFile, e.toString());
        }
    }

    private void loadLastGood() {
        if (lastGoodFile == null || !Files.exists(lastGoodFile)) {
            return;
        }
        try (var in = new java.io.BufferedInputStream(Files.newInputStream(lastGoodFile))) {
            var loaded = new LinkedHashMap<String, List<? extends MessageLite>>();
            var v = new LinkedHashMap<String, String>();
            DiscoveryResponse r;
            while ((r = DiscoveryResponse.parseDelimitedFrom(in)) != null) {
                if (!TYPES.contains(r.getTypeUrl())) {
                    throw new IOException("a set of an unknown type: " + r.getTypeUrl());
                }
                var list = new ArrayList<MessageLite>();
                for (Any any : r.getResourcesList()) {
                    list.add(unpack(r.getTypeUrl(), any));
                }
                loaded.put(r.getTypeUrl(), list);
                v.put(r.getTypeUrl(), r.getVersionInfo());
            }
            ProxyConfig config = translate("last-good:" + v, loaded);
            applier.apply(config);
            current.putAll(loaded);
            applied.putAll(loaded);
            versions.putAll(v);
            appliedVersion = versions.toString();
            log.info("event=xds_last_good_applied file={} versions={} listeners={}", lastGoodFile, versions, config.listeners().size());
        } catch (Exception e) {
            log.warn("event=xds_last_good_unusable file={} cause=\"{}\" (waiting for the controller)", lastGoodFile, e.toString());
        }
    }

    @Override
    public void close() {
        closed = true;
        timer.shutdownNow();
        if (requests != null) {
            requests.halfClose();
        }
        client.close();
    }
}
