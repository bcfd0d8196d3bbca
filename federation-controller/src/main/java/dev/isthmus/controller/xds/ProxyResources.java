package dev.isthmus.controller.xds;

import com.google.protobuf.Any;
import com.google.protobuf.UInt32Value;
import dev.isthmus.api.names.MeshNames;
import dev.isthmus.api.names.ServiceName;
import dev.isthmus.api.registry.Endpoint;
import io.envoyproxy.envoy.config.cluster.v3.Cluster;
import io.envoyproxy.envoy.config.core.v3.Address;
import io.envoyproxy.envoy.config.core.v3.AggregatedConfigSource;
import io.envoyproxy.envoy.config.core.v3.ConfigSource;
import io.envoyproxy.envoy.config.core.v3.HealthStatus;
import io.envoyproxy.envoy.config.core.v3.Http2ProtocolOptions;
import io.envoyproxy.envoy.config.core.v3.Locality;
import io.envoyproxy.envoy.config.core.v3.SocketAddress;
import io.envoyproxy.envoy.config.core.v3.TransportSocket;
import io.envoyproxy.envoy.config.endpoint.v3.ClusterLoadAssignment;
import io.envoyproxy.envoy.config.endpoint.v3.LbEndpoint;
import io.envoyproxy.envoy.config.endpoint.v3.LocalityLbEndpoints;
import io.envoyproxy.envoy.config.listener.v3.Filter;
import io.envoyproxy.envoy.config.listener.v3.FilterChain;
import io.envoyproxy.envoy.config.listener.v3.Listener;
import io.envoyproxy.envoy.config.route.v3.Route;
import io.envoyproxy.envoy.config.route.v3.RouteAction;
import io.envoyproxy.envoy.config.route.v3.RouteConfiguration;
import io.envoyproxy.envoy.config.route.v3.RouteMatch;
import io.envoyproxy.envoy.config.route.v3.VirtualHost;
import io.envoyproxy.envoy.extensions.filters.http.router.v3.Router;
import io.envoyproxy.envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager;
import io.envoyproxy.envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter;
import io.envoyproxy.envoy.extensions.transport_sockets.tls.v3.CommonTlsContext;
import io.envoyproxy.envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext;
import io.envoyproxy.envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher;
import io.envoyproxy.envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext;
import io.envoyproxy.envoy.extensions.upstreams.http.v3.HttpProtocolOptions;
import io.envoyproxy.envoy.type.matcher.v3.StringMatcher;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.Optional;
import dev.isthmus.api.policy.Policies;
import io.envoyproxy.envoy.config.cluster.v3.CircuitBreakers;
import io.envoyproxy.envoy.config.cluster.v3.OutlierDetection;

/**
 * Turns the federated registry into the Envoy v3 resources a cluster's proxies run (DESIGN.md,
 * "Config to the proxies"). A pure function of its {@link Inputs}; the xDS server calls it.
 *
 * <p><b>Gateway</b> ({@link #gateway}): one EDS cluster per exported local service, port and subset,
 * named by Istio's SNI ({@link MeshNames#gatewaySni}), with that service's local endpoints (their
 * sidecars' inbound mTLS ports). The gateway routes a connection to the cluster its SNI names; a name
 * it has no cluster for is refused.
 *
 * <p><b>Sidecar</b> ({@link #sidecarClusters}, {@link #outboundListener}): per service of the
 * federation and subset, an EDS cluster {@code outbound|<port>|<subset>|<host>} over mTLS (SNI as
 * above, the callee's SPIFFE IDs as the accepted SANs). Its endpoints: this cluster's healthy ones at
 * priority 0; each other cluster holding healthy ones as one endpoint at that cluster's east-west
 * gateway, weighted by the sum of their weights, at priorities 1, 2, ... in failover order (clusters of
 * this region first, then by name; FailoverPolicy will order them). A remote cluster without a
 * gateway address is left out. Clusters of a peer that is unreachable stay (static stability: the
 * proxies' outlier detection and retries move traffic; the registry's view may just be cut off).
 * When the node asks for it, an outbound HTTP listener routes by Host to these clusters.
 */
public final class ProxyResources {

    /** What is known of another member cluster. {@code gateway} is {@code host:port} or empty. */
    public record Peer(String cluster, String region, String zone, String gateway) {
    }

    /** The registry and peers the resources are built from. */
    public record Inputs(String cluster, String region, String zone, List<Endpoint> local, Map<String, List<Endpoint>> remote,
            Map<String, Peer> peers, Policies.Bundle policy) {
        public Inputs {
            local = List.copyOf(local);
            remote = Map.copyOf(remote);
            peers = Map.copyOf(peers);
            policy = policy == null ? Policies.Bundle.EMPTY : policy;
        }

        public Inputs(String cluster, String region, String zone, List<Endpoint> local, Map<String, List<Endpoint>> remote, Map<String, Peer> peers) {
            this(cluster, region, zone, local, remote, peers, Policies.Bundle.EMPTY);
        }

        /** Whether the MeshPolicy says {@code mtls: PERMISSIVE} (sidecars then accept plaintext callers too); STRICT otherwise. */
        boolean permissive() {
            return policy.mesh().stream().anyMatch(m -> "PERMISSIVE".equals(m.mtls()));
        }

        /** Whether {@code cluster} exports {@code service} (MeshPolicy; a cluster it does not list exports everything). */
        boolean exports(String cluster, String service) {
            for (var mesh : policy.mesh()) {
                for (var e : mesh.exports()) {
                    if (e.cluster().equals(cluster)) {
                        return e.services().contains("*") || e.services().contains(service);
                    }
                }
            }
            return true;
        }
    }

    /**
     * The clusters and their assignments (same order), and a content-addressed version of each list
     * (empty: not known, the server hashes the list itself).
     */
    public record ClusterSet(List<Cluster> clusters, List<ClusterLoadAssignment> assignments, String clustersVersion, String assignmentsVersion) {
        public ClusterSet(List<Cluster> clusters, List<ClusterLoadAssignment> assignments) {
            this(clusters, assignments, "", "");
        }
    }

    /**
     * The gateway's set with all of every exported service's traffic dropped (Envoy's
     * {@code ClusterLoadAssignment.policy.drop_overloads} at 100%, under {@code category}): what an
     * isolated cluster's gateway is served. Its endpoints stay, so the end of the isolation changes
     * the drop only.
     */
    static ClusterSet droppingAll(ClusterSet set, String category) {
        var drop = ClusterLoadAssignment.Policy.DropOverload.newBuilder().setCategory(category)
                .setDropPercentage(io.envoyproxy.envoy.type.v3.FractionalPercent.newBuilder().setNumerator(100)
                        .setDenominator(io.envoyproxy.envoy.type.v3.FractionalPercent.DenominatorType.HUNDRED))
                .build();
        var assignments = set.assignments().stream()
                .map(a -> a.toBuilder().setPolicy(a.getPolicy().toBuilder().clearDropOverloads().addDropOverloads(drop)).build()).toList();
        return new ClusterSet(set.clusters(), assignments, set.clustersVersion(), "");
    }

    static final String ROUTE_CONFIG = "outbound";
    /** Retries a sidecar may always have in flight per cluster under a retry budget ({@code min_retry_concurrency}). */
    static final int MIN_RETRY_CONCURRENCY = 10;
    private static final String HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    /** Envoy's way to say a cluster's endpoints speak HTTP/2. */
    private static final Any HTTP2_UPSTREAM = Any.pack(HttpProtocolOptions.newBuilder().setExplicitHttpConfig(
            HttpProtocolOptions.ExplicitHttpConfig.newBuilder().setHttp2ProtocolOptions(Http2ProtocolOptions.getDefaultInstance())).build());

    /** Whether an endpoint of this registry protocol is reached over HTTP/2. */
    static boolean speaksHttp2(String protocol) {
        return protocol.equals("grpc") || protocol.equals("http2");
    }

    private ProxyResources() {
    }

    /** A service port and subset of one service ({@code subset} empty: all its endpoints). */
    private record Key(ServiceName service, int port, String subset) {
    }

    private static Map<Key, List<Endpoint>> bySubset(List<Endpoint> endpoints) {
        var out = new TreeMap<Key, List<Endpoint>>(Comparator.comparing((Key k) -> k.service()).thenComparingInt(Key::port)
                .thenComparing(Key::subset));
        for (Endpoint e : endpoints) {
            ServiceName service;
            try {
                service = ServiceName.parse(e.service());
            } catch (IllegalArgumentException x) {
                continue; // the registry refuses such names; nothing to route to
            }
            int port = MeshNames.servicePort(e.labels());
            out.computeIfAbsent(new Key(service, port, ""), k -> new ArrayList<>()).add(e);
            String subset = e.labels().get(MeshNames.SUBSET_LABEL);
            if (subset != null && subset.matches("[A-Za-z0-9.-]{1,63}")) {
                out.computeIfAbsent(new Key(service, port, subset), k -> new ArrayList<>()).add(e);
            }
        }
        return out;
    }

    /**
     * What was built for each service at the last rebuild, and from what: a rebuild reuses a service's
     * resources (the same immutable messages) when its inputs are equal, so a change to one service
     * rebuilds only that service's clusters and assignments. The xDS server keeps one across
     * rebuilds; a rebuild runs on one thread at a time.
     */
    public static final class Memo {
        private final Map<String, Built> gateway = new HashMap<>();
        private final Map<String, Built> sidecar = new HashMap<>();
        private int rebuilt;
        private int reused;

        /** Services whose resources the last build made anew. */
        public int rebuilt() {
            return rebuilt;
        }

        /** Services whose resources the last build took from the previous one. */
        public int reused() {
            return reused;
        }

        private Built get(Map<String, Built> kind, String service, Object inputs, java.util.function.Supplier<Built> build) {
            Built held = kind.get(service);
            if (held != null && held.inputs().equals(inputs)) {
                reused++;
                return held;
            }
            rebuilt++;
            Built built = build.get();
            kind.put(service, built);
            return built;
        }

        private void begin() {
            rebuilt = 0;
            reused = 0;
        }

        /** Forgets services that are gone. */
        private void retain(Map<String, Built> kind, Set<String> services) {
            kind.keySet().retainAll(services);
        }
    }

    /** One service's resources, the inputs they were built from, and a digest of each list. */
    private record Built(Object inputs, List<Cluster> clusters, List<ClusterLoadAssignment> assignments, byte[] clustersDigest,
            byte[] assignmentsDigest) {
        static Built of(Object inputs, List<Cluster> clusters, List<ClusterLoadAssignment> assignments) {
            return new Built(inputs, List.copyOf(clusters), List.copyOf(assignments), digest(clusters), digest(assignments));
        }
    }

    private static byte[] digest(List<? extends com.google.protobuf.Message> messages) {
        try {
            var md = java.security.MessageDigest.getInstance("SHA-256");
            for (var m : messages) {
                md.update(m.toByteArray());
            }
            return md.digest();
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Joins the services' resources in service order; the versions come from their digests. */
    private static ClusterSet join(List<Built> services) {
        var clusters = new ArrayList<Cluster>();
        var assignments = new ArrayList<ClusterLoadAssignment>();
        try {
            var cd = java.security.MessageDigest.getInstance("SHA-256");
            var ad = java.security.MessageDigest.getInstance("SHA-256");
            for (Built b : services) {
                clusters.addAll(b.clusters());
                assignments.addAll(b.assignments());
                cd.update(b.clustersDigest());
                ad.update(b.assignmentsDigest());
            }
            return new ClusterSet(clusters, assignments, java.util.HexFormat.of().formatHex(cd.digest(), 0, 8),
                    java.util.HexFormat.of().formatHex(ad.digest(), 0, 8));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Endpoints by service name, the services in {@link ServiceName} order; names the registry would refuse are left out. */
    private static TreeMap<ServiceName, List<Endpoint>> byService(List<Endpoint> endpoints) {
        var out = new TreeMap<ServiceName, List<Endpoint>>();
        for (Endpoint e : endpoints) {
            try {
                out.computeIfAbsent(ServiceName.parse(e.service()), k -> new ArrayList<>()).add(e);
            } catch (IllegalArgumentException x) {
                // the registry refuses such names; nothing to route to
            }
        }
        return out;
    }

    /** The gateway's clusters: one per exported local service, port and subset, named by its SNI. */
    public static ClusterSet gateway(Inputs in) {
        return gateway(in, new Memo());
    }

    /** What one service's gateway clusters are built from. */
    private record GatewayInputs(String region, String zone, boolean exported, List<Endpoint> endpoints) {
    }

    /** As {@link #gateway(Inputs)}, rebuilding only the services whose inputs changed since {@code memo}'s last build. */
    public static ClusterSet gateway(Inputs in, Memo memo) {
        memo.begin();
        var built = new ArrayList<Built>();
        var services = byService(in.local());
        services.forEach((service, endpoints) -> {
            var inputs = new GatewayInputs(in.region(), in.zone(), in.exports(in.cluster(), service.toString()), endpoints);
            built.add(memo.get(memo.gateway, service.toString(), inputs, () -> gatewayService(inputs)));
        });
        memo.retain(memo.gateway, services.keySet().stream().map(ServiceName::toString).collect(java.util.stream.Collectors.toSet()));
        return join(built);
    }

    private static Built gatewayService(GatewayInputs in) {
        var clusters = new ArrayList<Cluster>();
        var assignments = new ArrayList<ClusterLoadAssignment>();
        if (in.exported()) { // not exported: its SNI is refused like any unknown name
            bySubset(in.endpoints()).forEach((key, endpoints) -> {
                String name = MeshNames.gatewaySni(key.port(), key.subset(), key.service());
                clusters.add(edsCluster(name, Cluster.LbPolicy.LEAST_REQUEST).build());
                var group = LocalityLbEndpoints.newBuilder().setLocality(locality(in.region(), in.zone())).setPriority(0);
                endpoints.stream().sorted(Comparator.comparing(Endpoint::instance)).forEach(e -> group.addLbEndpoints(lbEndpoint(e.address(),
                        e.port(), e.weight(), e.healthy())));
                assignments.add(ClusterLoadAssignment.newBuilder().setClusterName(name).addEndpoints(group).build());
            });
        }
        return Built.of(in, clusters, assignments);
    }

    /** The sidecars' outbound clusters for every service of the federation (the same for every sidecar of this cluster). */
    public static ClusterSet sidecarClusters(Inputs in) {
        return sidecarClusters(in, new Memo());
    }

    /**
     * What one service's outbound clusters are built from: its endpoints here and in each other
     * cluster, the other clusters in its failover order, which of them export it, and its
     * TrafficPolicy.
     */
    private record SidecarInputs(String cluster, String region, String zone, List<Endpoint> local, Map<String, List<Endpoint>> remote,
            List<Peer> order, Set<String> exporting, Optional<Policies.TrafficPolicy> traffic) {
    }

    /** As {@link #sidecarClusters(Inputs)}, rebuilding only the services whose inputs changed since {@code memo}'s last build. */
    public static ClusterSet sidecarClusters(Inputs in, Memo memo) {
        memo.begin();
        var local = byService(in.local());
        var remote = new TreeMap<String, TreeMap<ServiceName, List<Endpoint>>>();
        in.remote().forEach((cluster, endpoints) -> remote.put(cluster, byService(endpoints)));
        var services = new TreeSet<>(local.keySet());
        remote.values().forEach(m -> services.addAll(m.keySet()));
        var built = new ArrayList<Built>();
        var names = new java.util.HashSet<String>();
        for (ServiceName service : services) {
            String name = service.toString();
            var there = new TreeMap<String, List<Endpoint>>();
            remote.forEach((cluster, m) -> {
                var list = m.get(service);
                if (list != null) {
                    there.put(cluster, list);
                }
            });
            var exporting = new TreeSet<String>();
            if (in.exports(in.cluster(), name)) {
                exporting.add(in.cluster());
            }
            in.peers().keySet().forEach(c -> {
                if (in.exports(c, name)) {
                    exporting.add(c);
                }
            });
            var inputs = new SidecarInputs(in.cluster(), in.region(), in.zone(), local.getOrDefault(service, List.of()), there,
                    failoverOrder(in, name), exporting, in.policy().trafficFor(name));
            built.add(memo.get(memo.sidecar, name, inputs, () -> sidecarService(service, inputs)));
            names.add(name);
        }
        memo.retain(memo.sidecar, names);
        return join(built);
    }

    private static Built sidecarService(ServiceName service, SidecarInputs in) {
        var all = new ArrayList<Endpoint>(in.local());
        in.remote().values().forEach(all::addAll);
        var localKeys = bySubset(in.local());
        var remoteKeys = new HashMap<String, Map<Key, List<Endpoint>>>();
        in.remote().forEach((cluster, endpoints) -> remoteKeys.put(cluster, bySubset(endpoints)));
        var clusters = new ArrayList<Cluster>();
        var assignments = new ArrayList<ClusterLoadAssignment>();
        var traffic = in.traffic();
        bySubset(all).forEach((key, endpoints) -> {
            String name = MeshNames.outboundCluster(key.port(), key.subset(), key.service());
            clusters.add(outboundCluster(name, key, endpoints, traffic));
            var cla = ClusterLoadAssignment.newBuilder().setClusterName(name);
            addEndpoints(cla, in, key, localKeys, remoteKeys, null);
            assignments.add(cla.build());
            // A TrafficPolicy destination pinned to one cluster: that cluster's endpoints of the subset only.
            if (traffic.isPresent()) {
                var pinned = new java.util.TreeSet<String>();
                traffic.get().routes().forEach(r -> r.destinations().forEach(d -> {
                    if (d.subset().equals(key.subset()) && d.cluster().isPresent()) {
                        pinned.add(d.cluster().get());
                    }
                }));
                for (String only : pinned) {
                    String pinnedName = name + "|" + only;
                    clusters.add(outboundCluster(pinnedName, key, endpoints, traffic));
                    var pcla = ClusterLoadAssignment.newBuilder().setClusterName(pinnedName);
                    addEndpoints(pcla, in, key, localKeys, remoteKeys, only);
                    assignments.add(pcla.build());
                }
            }
        });
        // Subsets the TrafficPolicy names that no endpoint has (yet): empty clusters, so that share of the
        // traffic is answered 503 (as Envoy does) instead of the route set being refused.
        if (traffic.isPresent()) {
            var names = new java.util.HashSet<String>();
            clusters.forEach(c -> names.add(c.getName()));
            var ports = new java.util.TreeSet<Integer>();
            all.forEach(e -> ports.add(MeshNames.servicePort(e.labels())));
            for (int port : ports) {
                for (var r : traffic.get().routes()) {
                    for (var d : r.destinations()) {
                        String name = MeshNames.outboundCluster(port, d.subset(), service) + d.cluster().map(c -> "|" + c).orElse("");
                        if (names.add(name)) {
                            clusters.add(outboundCluster(name, new Key(service, port, d.subset()), List.of(), traffic));
                            assignments.add(ClusterLoadAssignment.newBuilder().setClusterName(name).build());
                        }
                    }
                }
            }
        }
        return Built.of(in, clusters, assignments);
    }

    private static Cluster outboundCluster(String name, Key key, List<Endpoint> endpoints, Optional<Policies.TrafficPolicy> traffic) {
        var ids = new TreeSet<String>();
        endpoints.forEach(e -> {
            if (!e.identity().isEmpty()) {
                ids.add(e.identity());
            }
        });
        var tls = UpstreamTlsContext.newBuilder().setSni(MeshNames.gatewaySni(key.port(), key.subset(), key.service()));
        var validation = CertificateValidationContext.newBuilder();
        ids.forEach(id -> validation.addMatchTypedSubjectAltNames(SubjectAltNameMatcher.newBuilder()
                .setSanType(SubjectAltNameMatcher.SanType.URI).setMatcher(StringMatcher.newBuilder().setExact(id))));
        tls.setCommonTlsContext(CommonTlsContext.newBuilder().setValidationContext(validation));
        var cluster = edsCluster(name, Cluster.LbPolicy.LEAST_REQUEST)
                .setTransportSocket(TransportSocket.newBuilder().setName("envoy.transport_sockets.tls").setTypedConfig(Any.pack(tls.build())));
        if (endpoints.stream().anyMatch(e -> speaksHttp2(e.protocol()))) {
            cluster.putTypedExtensionProtocolOptions(HTTP_PROTOCOL_OPTIONS, HTTP2_UPSTREAM);
        }
        traffic.ifPresent(t -> {
            var budget = t.routes().stream().flatMap(r -> r.retries().stream()).flatMap(r -> r.budgetPercent().stream()).max(Integer::compare);
            if (t.circuitBreaker().isPresent() || budget.isPresent()) {
                var th = CircuitBreakers.Thresholds.newBuilder();
                t.circuitBreaker().ifPresent(cb -> th.setMaxConnections(UInt32Value.of(cb.maxConnections()))
                        .setMaxPendingRequests(UInt32Value.of(cb.maxPendingRequests())).setMaxRequests(UInt32Value.of(cb.maxRequests())));
                // The budget's floor: Envoy's default of 3 retries in flight is too low when a whole region
                // goes dark and answers slow down (measured by isthmus drill: the 4th concurrent retry was
                // refused and the request failed); at high concurrency the percentage governs anyway.
                budget.ifPresent(b -> th.setRetryBudget(CircuitBreakers.Thresholds.RetryBudget.newBuilder()
                        .setBudgetPercent(io.envoyproxy.envoy.type.v3.Percent.newBuilder().setValue(b))
                        .setMinRetryConcurrency(UInt32Value.of(MIN_RETRY_CONCURRENCY))));
                cluster.setCircuitBreakers(CircuitBreakers.newBuilder().addThresholds(th));
            }
            t.outlierDetection().ifPresent(od -> cluster.setOutlierDetection(OutlierDetection.newBuilder()
                    .setConsecutive5Xx(UInt32Value.of(od.consecutiveErrors()))
                    .setBaseEjectionTime(com.google.protobuf.util.Durations.fromMillis(od.baseEjectionTime().toMillis()))
                    .setMaxEjectionPercent(UInt32Value.of(od.maxEjectionPercent()))));
        });
        return cluster.build();
    }

    /**
     * This cluster's healthy endpoints at priority 0, then each other cluster that exports the
     * service and has healthy endpoints as one endpoint at its gateway, in failover order;
     * {@code only}: just that cluster's.
     */
    private static void addEndpoints(ClusterLoadAssignment.Builder cla, SidecarInputs in, Key key, Map<Key, List<Endpoint>> localKeys,
            Map<String, Map<Key, List<Endpoint>>> remoteKeys, String only) {
        int priority = 0;
        if (only == null || only.equals(in.cluster())) {
            var local = localKeys.getOrDefault(key, List.of()).stream().filter(Endpoint::healthy)
                    .sorted(Comparator.comparing(Endpoint::instance)).toList();
            if (!local.isEmpty()) {
                var group = LocalityLbEndpoints.newBuilder().setLocality(locality(in.region(), in.zone())).setPriority(priority++);
                local.forEach(e -> group.addLbEndpoints(lbEndpoint(e.address(), e.port(), e.weight(), true)));
                cla.addEndpoints(group);
            }
        }
        for (Peer peer : in.order()) {
            if (only != null && !only.equals(peer.cluster()) || !in.exporting().contains(peer.cluster())) {
                continue;
            }
            var there = remoteKeys.getOrDefault(peer.cluster(), Map.of()).getOrDefault(key, List.of()).stream().filter(Endpoint::healthy).toList();
            var gateway = hostPort(peer.gateway());
            if (there.isEmpty() || gateway == null) {
                continue;
            }
            int weight = Math.min(128, there.stream().mapToInt(Endpoint::weight).sum());
            cla.addEndpoints(LocalityLbEndpoints.newBuilder().setLocality(locality(peer.region(), peer.zone())).setPriority(priority++)
                    .addLbEndpoints(lbEndpoint(gateway.host(), gateway.port(), weight, true)));
        }
    }

    /**
     * Other clusters (with a gateway address) in failover order for {@code service}: with an
     * {@code ordered} FailoverPolicy, clusters of its regions in its order, then the rest; otherwise
     * (no policy, or {@code locality}) clusters of this cluster's region first, then by name.
     */
    static List<Peer> failoverOrder(Inputs in, String service) {
        var policy = in.policy().failoverFor(service).filter(f -> f.mode().equals("ordered"));
        Comparator<Peer> byRegion = policy.<Comparator<Peer>>map(f -> Comparator.comparingInt(p -> {
            int i = f.regions().indexOf(p.region());
            return i < 0 ? Integer.MAX_VALUE : i;
        })).orElse(Comparator.comparing((Peer p) -> !p.region().equals(in.region())));
        return in.peers().values().stream().filter(p -> hostPort(p.gateway()) != null).sorted(byRegion.thenComparing(Peer::cluster)).toList();
    }

    /**
     * The sidecar's outbound HTTP listener at {@code address}: one virtual host per service port (its
     * host names: {@code name.namespace.svc.cluster.local}, {@code name.namespace},
     * {@code name.namespace.svc}, and {@code name} within the caller's own namespace; each with
     * {@code :port}, and for the default port 80 also without). A service with
     * a TrafficPolicy gets its routes (matches, weighted subsets and clusters, timeouts, retries);
     * others one route to the whole service with a 15 s timeout and 2 retries on
     * {@code connect-failure,reset,refused-stream,unavailable}, as Istio's default retries: a reset
     * only for idempotent requests; a connect failure, a refused HTTP/2 stream and a gRPC
     * UNAVAILABLE answer (the server did not take the call) whatever the method.
     */
    /** The retry conditions of a service's route when no TrafficPolicy sets its own. */
    public static final String DEFAULT_RETRY_ON = "connect-failure,reset,refused-stream,unavailable";

    public static Listener outboundListener(String host, int port, String callerNamespace, ClusterSet clusters, Policies.Bundle policy) {
        return outboundListener(host, port, outboundRoutes(callerNamespace, clusters, policy));
    }

    /**
     * The outbound listener at {@code host:port} around {@code connectionManager} (from
     * {@link #outboundRoutes}): sidecars of one namespace share that message, so the controller holds
     * their route configuration once, not once per sidecar.
     */
    public static Listener outboundListener(String host, int port, Any connectionManager) {
        return Listener.newBuilder().setName("outbound")
                .setAddress(Address.newBuilder().setSocketAddress(SocketAddress.newBuilder().setAddress(host).setPortValue(port)))
                .addFilterChains(FilterChain.newBuilder().addFilters(Filter.newBuilder().setName("envoy.filters.network.http_connection_manager")
                        .setTypedConfig(connectionManager)))
                .build();
    }

    /** The outbound listener's HTTP connection manager (its routes) for sidecars of {@code callerNamespace}, packed. */
    public static Any outboundRoutes(String callerNamespace, ClusterSet clusters, Policies.Bundle policy) {
        var route = RouteConfiguration.newBuilder().setName(ROUTE_CONFIG);
        var seen = new LinkedHashSet<String>();
        for (Cluster c : clusters.clusters()) {
            String[] parts = c.getName().split("\\|", -1);
            if (parts.length != 4 || !parts[2].isEmpty()) {
                continue; // subset and pinned clusters are for the routes that name them
            }
            String fqdn = parts[3];
            String[] labels = fqdn.split("\\.");
            var domains = new ArrayList<String>();
            var names = new ArrayList<>(List.of(fqdn, labels[0] + "." + labels[1], labels[0] + "." + labels[1] + ".svc"));
            if (labels[1].equals(callerNamespace)) {
                names.add(labels[0]);
            }
            // The default service port (80) is reached by the bare names too; every other port only with
            // its number (catalog.shop:9090), as Istio names them.
            boolean defaultPort = parts[1].equals(Integer.toString(MeshNames.DEFAULT_SERVICE_PORT));
            for (String n : names) {
                for (String d : defaultPort ? List.of(n, n + ":" + parts[1]) : List.of(n + ":" + parts[1])) {
                    if (seen.add(d)) {
                        domains.add(d);
                    }
                }
            }
            var vhost = VirtualHost.newBuilder().setName(fqdn + ":" + parts[1]).addAllDomains(domains);
            var traffic = policy.trafficFor(labels[1] + "/" + labels[0]);
            if (traffic.isPresent()) {
                String prefix = "outbound|" + parts[1] + "|";
                for (var r : traffic.get().routes()) {
                    vhost.addRoutes(policyRoute(r, prefix, fqdn));
                }
            } else {
                vhost.addRoutes(Route.newBuilder().setMatch(RouteMatch.newBuilder().setPrefix("/"))
                        .setRoute(RouteAction.newBuilder().setCluster(c.getName())
                                .setTimeout(com.google.protobuf.Duration.newBuilder().setSeconds(15))
                                .setRetryPolicy(io.envoyproxy.envoy.config.route.v3.RetryPolicy.newBuilder()
                                        .setRetryOn(DEFAULT_RETRY_ON).setNumRetries(UInt32Value.of(2)))));
            }
            route.addVirtualHosts(vhost);
        }
        var hcm = HttpConnectionManager.newBuilder().setStatPrefix("outbound").setRouteConfig(route)
                .addHttpFilters(HttpFilter.newBuilder().setName("envoy.filters.http.router").setTypedConfig(Any.pack(Router.getDefaultInstance())));
        return Any.pack(hcm.build());
    }

    /** One TrafficPolicy route as an Envoy route; destinations name {@code outbound|<port>|<subset>|<host>[|<cluster>]}. */
    private static Route policyRoute(Policies.Route r, String clusterPrefix, String fqdn) {
        var match = RouteMatch.newBuilder();
        var path = r.match().path();
        if (path.isEmpty() || path.get().prefix() != null) {
            match.setPrefix(path.map(Policies.PathMatch::prefix).orElse("/"));
        } else if (path.get().exact() != null) {
            match.setPath(path.get().exact());
        } else {
            match.setSafeRegex(io.envoyproxy.envoy.type.matcher.v3.RegexMatcher.newBuilder().setRegex(path.get().regex()));
        }
        for (var h : r.match().headers()) {
            var hm = io.envoyproxy.envoy.config.route.v3.HeaderMatcher.newBuilder().setName(h.name());
            if (h.exact() == null) {
                hm.setPresentMatch(true);
            } else {
                hm.setStringMatch(StringMatcher.newBuilder().setExact(h.exact()));
            }
            match.addHeaders(hm);
        }
        r.match().method().ifPresent(m -> match.addHeaders(io.envoyproxy.envoy.config.route.v3.HeaderMatcher.newBuilder().setName(":method")
                .setStringMatch(StringMatcher.newBuilder().setExact(m))));
        var action = RouteAction.newBuilder();
        var shares = r.destinations().stream().filter(d -> d.weight() > 0).toList();
        if (shares.size() == 1) {
            var d = shares.get(0);
            action.setCluster(clusterPrefix + d.subset() + "|" + fqdn + d.cluster().map(c -> "|" + c).orElse(""));
        } else {
            var wc = io.envoyproxy.envoy.config.route.v3.WeightedCluster.newBuilder();
            for (var d : shares) {
                wc.addClusters(io.envoyproxy.envoy.config.route.v3.WeightedCluster.ClusterWeight.newBuilder()
                        .setName(clusterPrefix + d.subset() + "|" + fqdn + d.cluster().map(c -> "|" + c).orElse(""))
                        .setWeight(UInt32Value.of(d.weight())));
            }
            action.setWeightedClusters(wc);
        }
        action.setTimeout(com.google.protobuf.util.Durations.fromMillis(r.timeout().map(java.time.Duration::toMillis).orElse(15_000L)));
        r.retries().ifPresent(rt -> action.setRetryPolicy(io.envoyproxy.envoy.config.route.v3.RetryPolicy.newBuilder()
                .setRetryOn(String.join(",", rt.on())).setNumRetries(UInt32Value.of(rt.attempts()))));
        return Route.newBuilder().setName(r.name()).setMatch(match).setRoute(action).build();
    }

    /** A sidecar's inbound listener and the static cluster of its app. */
    public record Inbound(Listener listener, Cluster app) {
    }

    /**
     * A sidecar's inbound listener, when it asks for it ({@code ISTHMUS_INBOUND_ADDRESS}): mTLS only
     * (a client certificate the federated bundle vouches for; under MeshPolicy {@code PERMISSIVE},
     * plaintext callers too, without an identity), HTTP to the app at {@code app}
     * (HTTP/2 when it speaks grpc or http2), the caller's verified SPIFFE ID passed in
     * {@code x-isthmus-peer-identity}, and the service's AuthorizationPolicies compiled to Envoy's
     * RBAC filters: the DENY policies first (a match refuses), then the ALLOW ones (when there are
     * any, a request must match one); no policy: every authenticated caller passes.
     */
    public static Inbound inbound(Inputs in, String service, HostPort address, HostPort app, boolean http2) {
        return inbound(in, service, "inbound", address, app, http2);
    }

    /**
     * An inbound listener named {@code listenerName}: {@code inbound} for the sidecar's first service port,
     * {@code inbound|<service port>} for each further one (its own listener and app port).
     */
    public static Inbound inbound(Inputs in, String service, String listenerName, HostPort address, HostPort app, boolean http2) {
        String appCluster = "inbound|" + app.port();
        var cluster = Cluster.newBuilder().setName(appCluster).setType(Cluster.DiscoveryType.STATIC)
                .setConnectTimeout(com.google.protobuf.Duration.newBuilder().setSeconds(2))
                .setLoadAssignment(ClusterLoadAssignment.newBuilder().setClusterName(appCluster)
                        .addEndpoints(LocalityLbEndpoints.newBuilder().addLbEndpoints(lbEndpoint(app.host(), app.port(), 1, true))));
        if (http2) {
            cluster.putTypedExtensionProtocolOptions(HTTP_PROTOCOL_OPTIONS, HTTP2_UPSTREAM);
        }
        var route = RouteConfiguration.newBuilder().setName("inbound").addVirtualHosts(VirtualHost.newBuilder().setName("inbound").addDomains("*")
                .addRoutes(Route.newBuilder().setMatch(RouteMatch.newBuilder().setPrefix("/"))
                        .setRoute(RouteAction.newBuilder().setCluster(appCluster).setTimeout(com.google.protobuf.Duration.newBuilder().setSeconds(0)))));
        var hcm = HttpConnectionManager.newBuilder().setStatPrefix("inbound").setRouteConfig(route);
        String namespace = service.contains("/") ? service.substring(0, service.indexOf('/')) : "";
        String name = service.substring(service.indexOf('/') + 1);
        var applicable = in.policy().authorization().stream()
                .filter(a -> a.meta().namespace().equals(namespace) && (a.service().isEmpty() || a.service().equals(service))).toList();
        for (String action : List.of("DENY", "ALLOW")) {
            var rules = io.envoyproxy.envoy.config.rbac.v3.RBAC.newBuilder()
                    .setAction(action.equals("DENY") ? io.envoyproxy.envoy.config.rbac.v3.RBAC.Action.DENY : io.envoyproxy.envoy.config.rbac.v3.RBAC.Action.ALLOW);
            for (var a : applicable) {
                if (!a.action().equals(action)) {
                    continue;
                }
                for (int i = 0; i < a.rules().size(); i++) {
                    rules.putPolicies(a.meta().name() + "/" + i, rbacPolicy(a.rules().get(i)));
                }
            }
            if (rules.getPoliciesCount() > 0) {
                hcm.addHttpFilters(HttpFilter.newBuilder().setName("envoy.filters.http.rbac").setTypedConfig(Any.pack(
                        io.envoyproxy.envoy.extensions.filters.http.rbac.v3.RBAC.newBuilder().setRules(rules).build())));
            }
        }
        hcm.addHttpFilters(HttpFilter.newBuilder().setName("envoy.filters.http.router").setTypedConfig(Any.pack(Router.getDefaultInstance())));
        var tls = io.envoyproxy.envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext.newBuilder()
                .setRequireClientCertificate(com.google.protobuf.BoolValue.of(true)).build();
        var filter = Filter.newBuilder().setName("envoy.filters.network.http_connection_manager").setTypedConfig(Any.pack(hcm.build())).build();
        var tlsChain = FilterChain.newBuilder()
                .setTransportSocket(TransportSocket.newBuilder().setName("envoy.transport_sockets.tls").setTypedConfig(Any.pack(tls)))
                .addFilters(filter);
        var listener = Listener.newBuilder().setName(listenerName)
                .setAddress(Address.newBuilder().setSocketAddress(SocketAddress.newBuilder().setAddress(address.host()).setPortValue(address.port())));
        if (in.permissive()) {
            // Istio's PERMISSIVE: the tls_inspector tells TLS callers (mTLS, as STRICT) from plaintext ones (no identity)
            listener.addListenerFilters(io.envoyproxy.envoy.config.listener.v3.ListenerFilter.newBuilder()
                    .setName("envoy.filters.listener.tls_inspector").setTypedConfig(Any.pack(
                            io.envoyproxy.envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector.getDefaultInstance())));
            tlsChain.setFilterChainMatch(io.envoyproxy.envoy.config.listener.v3.FilterChainMatch.newBuilder().setTransportProtocol("tls"));
            listener.addFilterChains(tlsChain);
            listener.addFilterChains(FilterChain.newBuilder()
                    .setFilterChainMatch(io.envoyproxy.envoy.config.listener.v3.FilterChainMatch.newBuilder().setTransportProtocol("raw_buffer"))
                    .addFilters(filter));
        } else {
            listener.addFilterChains(tlsChain);
        }
        return new Inbound(listener.build(), cluster.build());
    }

    /** One AuthorizationPolicy rule: any of its operations (method x path) by any of its sources. */
    private static io.envoyproxy.envoy.config.rbac.v3.Policy rbacPolicy(Policies.Rule rule) {
        var policy = io.envoyproxy.envoy.config.rbac.v3.Policy.newBuilder();
        if (rule.to().isEmpty()) {
            policy.addPermissions(io.envoyproxy.envoy.config.rbac.v3.Permission.newBuilder().setAny(true));
        }
        for (var op : rule.to()) {
            var methods = op.methods().isEmpty() ? java.util.Collections.<String>singletonList(null) : op.methods();
            var paths = op.paths().isEmpty() ? java.util.Collections.<String>singletonList(null) : op.paths();
            for (String m : methods) {
                for (String p : paths) {
                    var and = io.envoyproxy.envoy.config.rbac.v3.Permission.Set.newBuilder();
                    if (m != null) {
                        and.addRules(io.envoyproxy.envoy.config.rbac.v3.Permission.newBuilder().setHeader(
                                io.envoyproxy.envoy.config.route.v3.HeaderMatcher.newBuilder().setName(":method").setStringMatch(StringMatcher.newBuilder().setExact(m))));
                    }
                    if (p != null) {
                        var path = p.endsWith("*") ? StringMatcher.newBuilder().setPrefix(p.substring(0, p.length() - 1))
                                : StringMatcher.newBuilder().setExact(p);
                        and.addRules(io.envoyproxy.envoy.config.rbac.v3.Permission.newBuilder().setUrlPath(
                                io.envoyproxy.envoy.type.matcher.v3.PathMatcher.newBuilder().setPath(path)));
                    }
                    if (and.getRulesCount() == 0) {
                        and.addRules(io.envoyproxy.envoy.config.rbac.v3.Permission.newBuilder().setAny(true));
                    }
                    policy.addPermissions(io.envoyproxy.envoy.config.rbac.v3.Permission.newBuilder().setAndRules(and));
                }
            }
        }
        if (rule.from().isEmpty()) {
            policy.addPrincipals(io.envoyproxy.envoy.config.rbac.v3.Principal.newBuilder().setAny(true));
        }
        for (var src : rule.from()) {
            var matcher = src.principal() != null ? StringMatcher.newBuilder().setExact(src.principal())
                    : StringMatcher.newBuilder().setPrefix("spiffe://" + src.trustDomain() + "/");
            policy.addPrincipals(io.envoyproxy.envoy.config.rbac.v3.Principal.newBuilder().setAuthenticated(
                    io.envoyproxy.envoy.config.rbac.v3.Principal.Authenticated.newBuilder().setPrincipalName(matcher)));
        }
        return policy.build();
    }

    /** What a proxyless gRPC client gets: API listeners, plaintext clusters and their assignments. */
    public record Proxyless(List<Listener> listeners, ClusterSet clusters) {
    }

    /**
     * For proxyless gRPC clients (grpc-java's {@code xds:///<name>.<namespace>} target): per service an
     * API listener named {@code name.namespace} (and {@code name.namespace.svc.cluster.local}) whose
     * inline routes follow the service's TrafficPolicy (matches and weighted subsets; timeouts and
     * retries are left to the client), and plaintext EDS clusters {@code proxyless|<port>|<subset>|<host>}
     * of this cluster's healthy endpoints, each locality weighted (gRPC ignores localities without a
     * weight). The client dials endpoints directly, so only endpoints that accept plaintext gRPC (for
     * example registered without a sidecar) serve it; other clusters' endpoints, behind their gateways'
     * mTLS, are not offered.
     */
    public static Proxyless proxyless(Inputs in) {
        var keys = bySubset(in.local());
        var clusters = new ArrayList<Cluster>();
        var assignments = new ArrayList<ClusterLoadAssignment>();
        var names = new java.util.HashSet<String>();
        java.util.function.BiConsumer<Key, List<Endpoint>> add = (key, endpoints) -> {
            String name = "proxyless|" + key.port() + "|" + key.subset() + "|" + key.service().clusterLocalHost();
            if (!names.add(name)) {
                return;
            }
            clusters.add(edsCluster(name, Cluster.LbPolicy.ROUND_ROBIN).build());
            var cla = ClusterLoadAssignment.newBuilder().setClusterName(name);
            var healthy = endpoints.stream().filter(Endpoint::healthy).sorted(Comparator.comparing(Endpoint::instance)).toList();
            if (!healthy.isEmpty()) {
                var group = LocalityLbEndpoints.newBuilder().setLocality(locality(in.region(), in.zone())).setPriority(0)
                        .setLoadBalancingWeight(UInt32Value.of(Math.max(1, healthy.stream().mapToInt(Endpoint::weight).sum())));
                healthy.forEach(e -> group.addLbEndpoints(lbEndpoint(e.address(), e.port(), e.weight(), true)));
                cla.addEndpoints(group);
            }
            assignments.add(cla.build());
        };
        keys.forEach(add);
        var listeners = new ArrayList<Listener>();
        var services = new java.util.TreeMap<String, Key>();
        keys.keySet().stream().filter(k -> k.subset().isEmpty()).forEach(k -> services.putIfAbsent(k.service().toString(), k));
        services.forEach((service, key) -> {
            String prefix = "proxyless|" + key.port() + "|";
            String host = key.service().clusterLocalHost();
            var vhost = VirtualHost.newBuilder().setName(host).addDomains("*");
            var traffic = in.policy().trafficFor(service);
            if (traffic.isPresent()) {
                for (var r : traffic.get().routes()) {
                    r.destinations().forEach(d -> add.accept(new Key(key.service(), key.port(), d.subset()), List.of()));
                    var route = policyRoute(r, prefix, host).toBuilder();
                    route.getRouteBuilder().clearRetryPolicy().clearTimeout();
                    // pinned destinations have no plaintext meaning here: route to the subset
                    var action = route.getRouteBuilder();
                    if (action.hasWeightedClusters()) {
                        for (var c : action.getWeightedClustersBuilder().getClustersBuilderList()) {
                            c.setName(stripPin(c.getName()));
                        }
                    } else {
                        action.setCluster(stripPin(action.getCluster()));
                    }
                    vhost.addRoutes(route);
                }
            } else {
                vhost.addRoutes(Route.newBuilder().setMatch(RouteMatch.newBuilder().setPrefix(""))
                        .setRoute(RouteAction.newBuilder().setCluster(prefix + "|" + host)));
            }
            var hcm = HttpConnectionManager.newBuilder().setStatPrefix(service)
                    .setRouteConfig(RouteConfiguration.newBuilder().setName(host).addVirtualHosts(vhost))
                    .addHttpFilters(HttpFilter.newBuilder().setName("envoy.filters.http.router").setTypedConfig(Any.pack(Router.getDefaultInstance())))
                    .build();
            for (String name : List.of(key.service().name() + "." + key.service().namespace(), host)) {
                listeners.add(Listener.newBuilder().setName(name)
                        .setApiListener(io.envoyproxy.envoy.config.listener.v3.ApiListener.newBuilder().setApiListener(Any.pack(hcm))).build());
            }
        });
        return new Proxyless(listeners, new ClusterSet(clusters, assignments));
    }

    /** {@code proxyless|p|s|host|cluster} → {@code proxyless|p|s|host}. */
    private static String stripPin(String name) {
        String[] parts = name.split("\\|", -1);
        return parts.length > 4 ? String.join("|", parts[0], parts[1], parts[2], parts[3]) : name;
    }

    private static Cluster.Builder edsCluster(String name, Cluster.LbPolicy lb) {
        return Cluster.newBuilder().setName(name).setType(Cluster.DiscoveryType.EDS)
                .setEdsClusterConfig(Cluster.EdsClusterConfig.newBuilder()
                        .setEdsConfig(ConfigSource.newBuilder().setAds(AggregatedConfigSource.getDefaultInstance())))
                .setConnectTimeout(com.google.protobuf.Duration.newBuilder().setSeconds(1)).setLbPolicy(lb);
    }

    private static Locality locality(String region, String zone) {
        return Locality.newBuilder().setRegion(region == null ? "" : region).setZone(zone == null ? "" : zone).build();
    }

    private static LbEndpoint lbEndpoint(String host, int port, int weight, boolean healthy) {
        return LbEndpoint.newBuilder()
                .setEndpoint(io.envoyproxy.envoy.config.endpoint.v3.Endpoint.newBuilder()
                        .setAddress(Address.newBuilder().setSocketAddress(SocketAddress.newBuilder().setAddress(host).setPortValue(port))))
                .setHealthStatus(healthy ? HealthStatus.HEALTHY : HealthStatus.UNHEALTHY)
                .setLoadBalancingWeight(UInt32Value.of(Math.max(1, weight))).build();
    }

    record HostPort(String host, int port) {
    }

    /** Parses {@code host:port}; null if empty or malformed. */
    static HostPort hostPort(String text) {
        if (text == null || text.isBlank()) {
            return null;
        }
        int colon = text.lastIndexOf(':');
        if (colon <= 0) {
            return null;
        }
        try {
            int port = Integer.parseInt(text.substring(colon + 1));
            return port < 1 || port > 65535 ? null : new HostPort(text.substring(0, colon), port);
        } catch (NumberFormatException e) {
            return null;
        }
    }
}
