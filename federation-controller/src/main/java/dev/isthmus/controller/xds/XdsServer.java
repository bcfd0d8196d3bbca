package dev.isthmus.controller.xds;

import com.google.protobuf.Message;
import com.google.protobuf.Value;
import dev.isthmus.api.names.PeerState;
import dev.isthmus.api.registry.Endpoint;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.federation.FederatedCatalog;
import dev.isthmus.controller.federation.PeerTracker;
import dev.isthmus.controller.registry.LocalRegistry;
import io.envoyproxy.controlplane.cache.v3.SimpleCache;
import io.envoyproxy.controlplane.cache.v3.Snapshot;
import io.envoyproxy.controlplane.server.DiscoveryServerCallbacks;
import io.envoyproxy.controlplane.server.V3DiscoveryServer;
import io.envoyproxy.envoy.config.core.v3.Node;
import io.envoyproxy.envoy.config.listener.v3.Listener;
import io.envoyproxy.envoy.service.discovery.v3.DeltaDiscoveryRequest;
import io.envoyproxy.envoy.service.discovery.v3.DiscoveryRequest;
import io.grpc.Server;
import io.grpc.netty.NettyServerBuilder;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.jboss.logging.Logger;

/**
 * The controller's xDS server (DESIGN.md, "Config to the proxies: xDS v3"): Envoy's aggregated
 * discovery service (ADS, state of the world) over gRPC on {@code isthmus.xds.listen} (15010), from
 * java-control-plane's snapshot cache, one snapshot per proxy.
 *
 * <p>A proxy says what it is in its node's metadata: {@code ISTHMUS_PROXY_TYPE} {@code gateway},
 * {@code proxyless} (a gRPC client with an {@code xds:///} target) or {@code sidecar} (the default); a sidecar may ask for an outbound HTTP listener with
 * {@code ISTHMUS_OUTBOUND_ADDRESS} ({@code host:port}); its node {@code cluster} is its service
 * ({@code namespace/name}). What each gets is {@link ProxyResources}'s.
 *
 * <p>Every {@code isthmus.xds.rebuild-interval} the server compares a fingerprint of its inputs (the
 * content hashes of the local and the peers' registries, the peers' gateway addresses (a name resolved
 * by {@link GatewayAddresses}), the policy in
 * force, whether this cluster is isolated) with the last one and rebuilds the snapshots when it changed,
 * and again at the next check when it changed during the build. Versions are per resource type and content-addressed, so a type whose
 * resources did not change is not sent again. A proxy's NACK is logged, counted
 * ({@code isthmus_xds_nacks_total}) and shown by {@link #status} until it ACKs a newer version.
 */
@ApplicationScoped
public class XdsServer {

    private static final Logger LOG = Logger.getLogger(XdsServer.class);
    static final String TYPE_KEY = "ISTHMUS_PROXY_TYPE";
    static final String OUTBOUND_KEY = "ISTHMUS_OUTBOUND_ADDRESS";
    static final String INBOUND_KEY = "ISTHMUS_INBOUND_ADDRESS";
    static final String APP_KEY = "ISTHMUS_APP_ADDRESS";
    static final String APP_PROTOCOL_KEY = "ISTHMUS_APP_PROTOCOL";
    /**
     * The sidecar's further service ports: a list of structs {@code service_port} (number),
     * {@code protocol}, {@code inbound} and {@code app} (host:port); each gets its own inbound listener
     * {@code inbound|<service_port>} to its own app port. Entries that do not parse are left out.
     */
    static final String PORTS_KEY = "ISTHMUS_PORTS";

    /**
     * One proxy the server knows: what it acknowledged, what it is being served now, whether the two
     * agree ({@code inSync}), and its last rejection.
     */
    public record ProxyStatus(String id, String type, String service, int streams, Map<String, String> acked, Map<String, String> served,
            boolean inSync, Nack lastNack) {
    }

    /** A rejected push: the resource type, the version refused, the proxy's reason, when. */
    public record Nack(String type, String version, String reason, Instant at) {
    }

    private static final class Proxy {
        final String group;
        final Node node;
        final String type;
        final AtomicInteger streams = new AtomicInteger();
        final Map<String, String> acked = new ConcurrentHashMap<>();
        volatile Nack lastNack;

        Proxy(String group, Node node, String type) {
            this.group = group;
            this.node = node;
            this.type = type;
        }
    }

    private final ControllerConfig config;
    private final LocalRegistry registry;
    private final FederatedCatalog catalog;
    private final PeerTracker peers;
    private final MeterRegistry meters;
    private final SimpleCache<String> cache = new SimpleCache<>(XdsServer::group);
    private final Map<String, Proxy> proxies = new ConcurrentHashMap<>();
    private final Map<Long, Proxy> streams = new ConcurrentHashMap<>();
    private final ScheduledExecutorService rebuilder = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("xds-rebuild").unstarted(r));
    private Server server;
    private String fingerprint = "";
    private ProxyResources.ClusterSet gatewaySet = new ProxyResources.ClusterSet(List.of(), List.of());
    private ProxyResources.ClusterSet sidecarSet = new ProxyResources.ClusterSet(List.of(), List.of());
    private dev.isthmus.api.policy.Policies.Bundle policyBundle = dev.isthmus.api.policy.Policies.Bundle.EMPTY;
    private ProxyResources.Inputs lastInputs = new ProxyResources.Inputs("", "", "", List.of(), Map.of(), Map.of());
    private ProxyResources.Proxyless proxylessSet = new ProxyResources.Proxyless(List.of(),
            new ProxyResources.ClusterSet(List.of(), List.of()));
    @jakarta.inject.Inject
    dev.isthmus.controller.policy.PolicyStore policy;
    /** While this cluster is isolated (a drill), its gateway is served every service with all traffic dropped. */
    @jakarta.inject.Inject
    dev.isthmus.controller.federation.Isolation isolation;
    private Timer buildTimer;
    private final ProxyResources.Memo gatewayMemo = new ProxyResources.Memo();
    private final ProxyResources.Memo sidecarMemo = new ProxyResources.Memo();
    private Counter servicesRebuilt;
    private final GatewayAddresses gatewayAddresses = new GatewayAddresses(java.time.Duration.ofSeconds(30));

    public XdsServer(ControllerConfig config, LocalRegistry registry, FederatedCatalog catalog, PeerTracker peers, MeterRegistry meters) {
        this.config = config;
        this.registry = registry;
        this.catalog = catalog;
        this.peers = peers;
        this.meters = meters;
    }

    void start(@Observes StartupEvent event) throws IOException {
        if (!config.xds().enabled()) {
            LOG.info("event=xds_disabled");
            return;
        }
        buildTimer = Timer.builder("isthmus_xds_snapshot_build_seconds").description("Time to rebuild the proxies' snapshots").register(meters);
        servicesRebuilt = Counter.builder("isthmus_xds_services_rebuilt_total")
                .description("Services whose gateway or sidecar resources a rebuild made anew (the others are reused)").register(meters);
        meters.gauge("isthmus_xds_connected_proxies", streams, Map::size);
        rebuild(true);
        server = NettyServerBuilder.forAddress(parse(config.xds().listen()))
                .addService(new V3DiscoveryServer(new Callbacks(), cache).getAggregatedDiscoveryServiceImpl()).build().start();
        // A new policy is pushed at once, not at the next check (it is what an operator waits for).
        policy.onApplied(() -> rebuilder.execute(() -> {
            try {
                rebuild(false);
            } catch (RuntimeException e) {
                LOG.errorf(e, "event=xds_rebuild_failed");
            }
        }));
        long every = Math.max(10, config.xds().rebuildInterval().toMillis());
        rebuilder.scheduleWithFixedDelay(() -> {
            try {
                rebuild(false);
            } catch (RuntimeException e) {
                LOG.errorf(e, "event=xds_rebuild_failed");
            }
        }, every, every, TimeUnit.MILLISECONDS);
        LOG.infof("event=xds_started address=%s", address());
    }

    void stop(@Observes ShutdownEvent event) {
        rebuilder.shutdownNow();
        gatewayAddresses.close();
        if (server != null) {
            server.shutdownNow();
        }
    }

    /** Where the server listens (the bound port when configured with 0). */
    public InetSocketAddress address() {
        return server == null ? null : (InetSocketAddress) server.getListenSockets().get(0);
    }

    /** Every proxy connected or known since it last connected, by id. */
    public List<ProxyStatus> status() {
        var out = new ArrayList<ProxyStatus>();
        new TreeMap<>(proxies).forEach((group, p) -> {
            var served = new TreeMap<String, String>();
            var snapshot = cache.getSnapshot(group);
            if (snapshot != null) {
                for (var type : List.of(io.envoyproxy.controlplane.cache.Resources.V3.CLUSTER_TYPE_URL,
                        io.envoyproxy.controlplane.cache.Resources.V3.ENDPOINT_TYPE_URL, io.envoyproxy.controlplane.cache.Resources.V3.LISTENER_TYPE_URL)) {
                    served.put(shortType(type), snapshot.version(type));
                }
            }
            var acked = new TreeMap<>(p.acked);
            out.add(new ProxyStatus(p.node.getId(), p.type, p.node.getCluster(), p.streams.get(), acked, served, acked.equals(served), p.lastNack));
        });
        return out;
    }

    private static String typeOf(Node node) {
        var field = node.getMetadata().getFieldsMap().get(TYPE_KEY);
        String type = field == null ? "" : field.getStringValue();
        return type.equals("gateway") || type.equals("proxyless") ? type : "sidecar";
    }

    static String group(Node node) {
        return typeOf(node) + "|" + node.getId();
    }

    ProxyResources.Inputs inputs() {
        var local = registry.snapshot().endpoints();
        var remote = new TreeMap<String, List<Endpoint>>();
        var known = new TreeMap<String, ProxyResources.Peer>();
        for (PeerTracker.Peer p : peers.peers()) {
            if (p.state() == PeerState.LEFT) {
                continue;
            }
            catalog.snapshot(p.cluster()).ifPresent(s -> remote.put(p.cluster(), s.endpoints()));
            known.put(p.cluster(), new ProxyResources.Peer(p.cluster(), p.region(), p.zone(), gatewayOf(p)));
        }
        var c = config.cluster();
        var applied = policy.applied();
        return new ProxyResources.Inputs(c.name(), c.region().orElse(c.name()), c.zone(), local, remote, known,
                applied == null ? dev.isthmus.api.policy.Policies.Bundle.EMPTY : applied.bundle());
    }

    /**
     * Where the sidecars reach a peer: its gateway's address, resolved; none while it is drained (a
     * drill), so it leaves their failover as a cluster without a gateway does. An unreachable peer
     * keeps its gateway (static stability: its endpoints stay, at the lowest priority).
     */
    private String gatewayOf(PeerTracker.Peer p) {
        return p.state() == PeerState.DRAINING ? "" : gatewayAddresses.resolve(p.gateway());
    }

    /**
     * What the snapshots are built from, in a few bytes: the content hashes the registries already
     * carry (this cluster's, and the one held for each member), the members' localities and gateways,
     * and the policy in force. Checked every rebuild interval without reading any endpoint.
     */
    private String fingerprint() {
        var sb = new StringBuilder(registry.snapshot().hash());
        for (PeerTracker.Peer p : peers.peers()) {
            if (p.state() != PeerState.LEFT) {
                sb.append('|').append(p.cluster()).append(' ').append(catalog.hash(p.cluster()).orElse("")).append(' ').append(p.region())
                        .append(' ').append(p.zone()).append(' ').append(gatewayOf(p));
            }
        }
        sb.append("|policy ").append(policy.sha()).append('/').append(policy.version());
        return isolated() ? sb.append("|isolated").toString() : sb.toString();
    }

    private boolean isolated() {
        return isolation != null && isolation.until().isPresent();
    }

    /** Rebuilds every proxy's snapshot if the inputs changed (or always, when {@code force}). */
    synchronized void rebuild(boolean force) {
        String fp = fingerprint();
        if (!force && fp.equals(fingerprint)) {
            return;
        }
        long start = System.nanoTime();
        var in = inputs();
        gatewaySet = ProxyResources.gateway(in, gatewayMemo);
        int gatewayRebuilt = gatewayMemo.rebuilt();
        if (isolated()) {
            gatewaySet = ProxyResources.droppingAll(gatewaySet, dev.isthmus.controller.federation.Isolation.DROP_CATEGORY);
        }
        sidecarSet = ProxyResources.sidecarClusters(in, sidecarMemo);
        proxylessSet = ProxyResources.proxyless(in);
        sharedVersions.clear();
        outboundRoutes.clear();
        lastInputs = in;
        policyBundle = in.policy();
        // The inputs were read after the fingerprint: if they changed in between (an isolation begun or
        // ended, a peer drained, a workload gone), this build may hold a state the fingerprint does not
        // name, and a state that then went back to the fingerprint's would never be built. Build again
        // at the next check in that case.
        fingerprint = fp.equals(fingerprint()) ? fp : null;
        proxies.values().forEach(p -> cache.setSnapshot(p.group, snapshot(p)));
        if (buildTimer != null) {
            buildTimer.record(System.nanoTime() - start, TimeUnit.NANOSECONDS);
        }
        if (servicesRebuilt != null) {
            servicesRebuilt.increment(gatewayRebuilt + sidecarMemo.rebuilt());
        }
        LOG.debugf("event=xds_rebuilt proxies=%d gateway_clusters=%d sidecar_clusters=%d services_rebuilt=%d services_reused=%d",
                proxies.size(), gatewaySet.clusters().size(), sidecarSet.clusters().size(), sidecarMemo.rebuilt(), sidecarMemo.reused());
    }

    /** Versions of the shared resource lists, computed once per rebuild (hashing them per proxy would cost megabytes each). */
    private final Map<Object, String> sharedVersions = new java.util.IdentityHashMap<>();

    private String sharedVersion(List<? extends Message> resources) {
        return sharedVersions.computeIfAbsent(resources, r -> version(resources));
    }

    /** A set's version of its clusters or assignments: the one its builder computed from the services' digests, if it did. */
    private String sharedVersion(List<? extends Message> resources, String known) {
        return known.isEmpty() ? sharedVersion(resources) : known;
    }

    /** One namespace's outbound routes, built once per rebuild and shared by its sidecars' listeners, with their digest. */
    private record Routes(com.google.protobuf.Any connectionManager, String digest) {
    }

    private final Map<String, Routes> outboundRoutes = new java.util.HashMap<>();

    private Routes outboundRoutes(String namespace, ProxyResources.ClusterSet set) {
        return outboundRoutes.computeIfAbsent(namespace, n -> {
            var any = ProxyResources.outboundRoutes(n, set, policyBundle);
            return new Routes(any, version(List.of(any)));
        });
    }

    private synchronized Snapshot snapshot(Proxy p) {
        if (p.type.equals("proxyless")) {
            var pl = proxylessSet;
            return Snapshot.create(pl.clusters().clusters(), sharedVersion(pl.clusters().clusters()), pl.clusters().assignments(),
                    sharedVersion(pl.clusters().assignments()), pl.listeners(), sharedVersion(pl.listeners()), List.of(), "0", List.of(), "0");
        }
        var set = p.type.equals("gateway") ? gatewaySet : sidecarSet;
        List<Listener> listeners = List.of();
        var clusters = set.clusters();
        String clustersVersion = sharedVersion(clusters, set.clustersVersion());
        String listenersVersion = "";
        if (p.type.equals("sidecar")) {
            var meta = p.node.getMetadata().getFieldsMap();
            // the sidecar's inbound listeners: its first service port's, then one per further port
            var inbounds = new java.util.ArrayList<ProxyResources.Inbound>();
            var inboundAt = meta.containsKey(INBOUND_KEY) ? ProxyResources.hostPort(meta.get(INBOUND_KEY).getStringValue()) : null;
            var appAt = meta.containsKey(APP_KEY) ? ProxyResources.hostPort(meta.get(APP_KEY).getStringValue()) : null;
            if (inboundAt != null && appAt != null) {
                inbounds.add(ProxyResources.inbound(lastInputs, p.node.getCluster(), inboundAt, appAt, ProxyResources.speaksHttp2(
                        meta.containsKey(APP_PROTOCOL_KEY) ? meta.get(APP_PROTOCOL_KEY).getStringValue() : "http")));
                var ports = meta.get(PORTS_KEY);
                for (var v : ports != null && ports.hasListValue() ? ports.getListValue().getValuesList() : List.<Value>of()) {
                    var f = v.getStructValue().getFieldsMap();
                    int servicePort = f.containsKey("service_port") ? (int) f.get("service_port").getNumberValue() : 0;
                    var portInbound = f.containsKey("inbound") ? ProxyResources.hostPort(f.get("inbound").getStringValue()) : null;
                    var portApp = f.containsKey("app") ? ProxyResources.hostPort(f.get("app").getStringValue()) : null;
                    if (servicePort >= 1 && servicePort <= 65535 && portInbound != null && portApp != null) {
                        inbounds.add(ProxyResources.inbound(lastInputs, p.node.getCluster(), "inbound|" + servicePort, portInbound, portApp,
                                ProxyResources.speaksHttp2(f.containsKey("protocol") ? f.get("protocol").getStringValue() : "http")));
                    }
                }
            }
            if (!inbounds.isEmpty()) {
                listeners = inbounds.stream().map(ProxyResources.Inbound::listener).toList();
                listenersVersion = version(listeners);
                var apps = inbounds.stream().map(ProxyResources.Inbound::app).toList();
                clusters = new java.util.ArrayList<>(clusters);
                clusters.addAll(apps);
                clustersVersion = clustersVersion + "-" + version(apps);
            }
            var field = p.node.getMetadata().getFieldsMap().get(OUTBOUND_KEY);
            var address = field == null ? null : ProxyResources.hostPort(field.getStringValue());
            if (address != null) {
                String service = p.node.getCluster();
                String namespace = service.contains("/") ? service.substring(0, service.indexOf('/')) : "";
                var routes = outboundRoutes(namespace, set);
                listeners = new java.util.ArrayList<>(listeners);
                listeners.add(ProxyResources.outboundListener(address.host(), address.port(), routes.connectionManager()));
                // the shared routes' digest stands for their bytes: hashing them again per sidecar would cost their size each
                listenersVersion = listenersVersion + "-" + routes.digest() + "@" + address.host() + ":" + address.port();
            }
        }
        return Snapshot.create(clusters, clustersVersion, set.assignments(), sharedVersion(set.assignments(), set.assignmentsVersion()), listeners,
                listenersVersion.isEmpty() ? version(listeners) : listenersVersion, List.of(), "0", List.of(), "0");
    }

    private static String version(List<? extends Message> resources) {
        try {
            var md = MessageDigest.getInstance("SHA-256");
            for (Message m : resources) {
                md.update(m.toByteArray());
            }
            return HexFormat.of().formatHex(md.digest(), 0, 8);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static InetSocketAddress parse(String listen) {
        var hp = ProxyResources.hostPort(listen);
        if (hp == null && !listen.endsWith(":0")) {
            throw new IllegalArgumentException("isthmus.xds.listen: '" + listen + "' is not host:port");
        }
        return hp == null ? new InetSocketAddress(listen.substring(0, listen.lastIndexOf(':')), 0) : new InetSocketAddress(hp.host(), hp.port());
    }

    private static String shortType(String typeUrl) {
        return typeUrl.substring(typeUrl.lastIndexOf('.') + 1);
    }

    private final class Callbacks implements DiscoveryServerCallbacks {
        @Override
        public void onV3StreamRequest(long streamId, DiscoveryRequest request) {
            Proxy proxy = streams.get(streamId);
            if (proxy == null) {
                if (!request.hasNode() || request.getNode().getId().isEmpty()) {
                    return; // java-control-plane answers nothing to a stream that never named its node
                }
                Node node = request.getNode();
                String group = group(node);
                proxy = proxies.compute(group, (g, held) -> held != null && held.node.equals(node) ? held : new Proxy(g, node, typeOf(node)));
                proxy.streams.incrementAndGet();
                streams.put(streamId, proxy);
                cache.setSnapshot(group, snapshot(proxy));
                LOG.infof("event=xds_proxy_connected proxy=%s type=%s service=%s stream=%d", node.getId(), proxy.type, node.getCluster(), streamId);
                for (String t : List.of("Cluster", "ClusterLoadAssignment", "Listener")) {
                    // at 0 from the first stream of a proxy type: a NACK rate then shows 0, and rate() sees the first NACK
                    Counter.builder("isthmus_xds_nacks_total").tag("type", t).tag("proxy_type", proxy.type).register(meters);
                }
            }
            String type = shortType(request.getTypeUrl());
            if (request.hasErrorDetail()) {
                var nack = new Nack(type, request.getResponseNonce(), request.getErrorDetail().getMessage(), Instant.now());
                proxy.lastNack = nack;
                Counter.builder("isthmus_xds_nacks_total").tag("type", type).tag("proxy_type", proxy.type).register(meters).increment();
                LOG.warnf("event=xds_nack proxy=%s type=%s kept_version=%s reason=%s", proxy.node.getId(), type, request.getVersionInfo(),
                        request.getErrorDetail().getMessage());
            } else if (!request.getVersionInfo().isEmpty()) {
                String before = proxy.acked.put(type, request.getVersionInfo());
                if (!request.getVersionInfo().equals(before)) {
                    if (proxy.lastNack != null && proxy.lastNack.type().equals(type)) {
                        proxy.lastNack = null; // a newer version of that type was accepted
                    }
                    Counter.builder("isthmus_xds_acks_total").tag("type", type).tag("proxy_type", proxy.type).register(meters).increment();
                }
            }
        }

        @Override
        public void onV3StreamDeltaRequest(long streamId, DeltaDiscoveryRequest request) {
            // only state-of-the-world ADS is served
        }

        @Override
        public void onStreamClose(long streamId, String typeUrl) {
            closed(streamId);
        }

        @Override
        public void onStreamCloseWithError(long streamId, String typeUrl, Throwable error) {
            closed(streamId);
        }

        private void closed(long streamId) {
            Proxy p = streams.remove(streamId);
            if (p != null && p.streams.decrementAndGet() == 0) {
                LOG.infof("event=xds_proxy_disconnected proxy=%s type=%s", p.node.getId(), p.type);
                // The stream's watches go a moment after this callback: clear the snapshot once they have.
                rebuilder.schedule(() -> {
                    if (p.streams.get() == 0 && proxies.remove(p.group, p)) {
                        cache.clearSnapshot(p.group);
                    }
                }, 1, TimeUnit.SECONDS);
            }
        }
    }

    /** For tests: the current resources a gateway or sidecar gets. */
    Optional<Snapshot> snapshotOf(String group) {
        return Optional.ofNullable(cache.getSnapshot(group));
    }
}
