package dev.isthmus.proxy.tcp;

import dev.isthmus.proxy.EventLoops;
import dev.isthmus.proxy.config.xds.AdsClient;
import dev.isthmus.proxy.config.xds.ProxyConfig;
import dev.isthmus.proxy.identity.SpiffeSslContexts;
import dev.isthmus.proxy.identity.SvidClient;
import dev.isthmus.proxy.lb.ClusterLoadBalancer;
import io.micrometer.core.instrument.MeterRegistry;
import java.net.InetSocketAddress;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;

/**
 * Runs a {@link ProxyConfig}'s TCP proxy listeners and keeps them in step with new configs: a new
 * listener is started, a removed one stopped (its connections closed), a changed one (address,
 * cluster, or the cluster's TLS settings) restarted; a cluster whose endpoints or policy changed gets
 * a new load balancer under the running listeners, whose open connections are untouched. A listener
 * that cannot start (its port taken) refuses the whole config, and what was started for it is
 * stopped again.
 */
public final class RelayManager implements AdsClient.Applier, AutoCloseable {

    private final EventLoops loops;
    private final String sourceCluster;
    private final MeterRegistry meters;
    private final Supplier<Optional<SvidClient.Svid>> identity;
    private final Map<String, Running> listeners = new LinkedHashMap<>();
    private final Map<String, AtomicReference<ClusterLoadBalancer>> balancers = new LinkedHashMap<>();
    private final Map<String, dev.isthmus.proxy.lb.CircuitBreakers> breakers = new java.util.concurrent.ConcurrentHashMap<>();
    private volatile ProxyConfig config = new ProxyConfig("none", java.util.List.of(), Map.of());

    /** A running listener; {@code clusters} are the clusters it uses, as they were when it started (for TLS changes). */
    private record Running(ProxyConfig.ListenerSpec spec, Map<String, ProxyConfig.ClusterSpec> clusters, AutoCloseable handle,
            InetSocketAddress address) {
        void stop() {
            try {
                handle.close();
            } catch (Exception e) {
                // closing a listener does not fail in a way worth more than the log it writes
            }
        }
    }

    private final Map<String, dev.isthmus.proxy.http.HttpProxy.Upstream> httpUpstreams = new java.util.concurrent.ConcurrentHashMap<>();

    /** @param identity the workload's SVID, for clusters with an UpstreamTlsContext (none: such clusters are refused) */
    public RelayManager(EventLoops loops, MeterRegistry meters, Supplier<Optional<SvidClient.Svid>> identity) {
        this(loops, meters, identity, "");
    }

    /** @param sourceCluster this proxy's cluster (the {@code source_cluster} label of its request metrics) */
    public RelayManager(EventLoops loops, MeterRegistry meters, Supplier<Optional<SvidClient.Svid>> identity, String sourceCluster) {
        this.sourceCluster = sourceCluster;
        this.loops = loops;
        this.meters = meters;
        this.identity = identity;
    }

    public ProxyConfig config() {
        return config;
    }

    /**
     * The address a running listener is bound to. Does not wait for an update being applied (the
     * workload's registration asks this on its own thread, and must not stall behind a slow apply).
     */
    public Optional<InetSocketAddress> address(String listener) {
        return Optional.ofNullable(addresses.get(listener));
    }

    /** The running listeners' addresses, published after every change of {@link #listeners}. */
    private volatile Map<String, InetSocketAddress> addresses = Map.of();

    private void publishAddresses() {
        var next = new java.util.HashMap<String, InetSocketAddress>();
        listeners.forEach((name, r) -> next.put(name, r.address()));
        addresses = Map.copyOf(next);
    }

    private static boolean sameTls(ProxyConfig.ClusterSpec a, ProxyConfig.ClusterSpec b) {
        return a.mtls() == b.mtls() && a.expectedSpiffeIds().equals(b.expectedSpiffeIds()) && a.sni().equals(b.sni())
                && a.connectTimeout().equals(b.connectTimeout());
    }

    @Override
    public synchronized void apply(ProxyConfig next) throws Exception {
        for (var l : next.listeners()) {
            if (l.mtls() && identity == null) {
                throw new IllegalStateException("listener '" + l.name() + "' terminates mTLS but this proxy has no workload identity (trust-bridge)");
            }
        }
        for (var c : next.clusters().values()) {
            if (c.mtls() && identity == null) {
                throw new IllegalStateException("cluster '" + c.name() + "' asks for mTLS but this proxy has no workload identity (trust-bridge)");
            }
        }
        var started = new LinkedHashMap<String, Running>();
        var toStop = new java.util.ArrayList<Running>();
        var updated = new java.util.ArrayList<Running>();
        var undo = new java.util.ArrayList<Runnable>();
        try {
            for (var l : next.listeners()) {
                var used = new LinkedHashMap<String, ProxyConfig.ClusterSpec>();
                if (l.http().isPresent()) {
                    for (var vh : l.http().get().virtualHosts()) {
                        for (var r : vh.routes()) {
                            r.clusters().forEach(w -> used.put(w.cluster(), next.clusters().get(w.cluster())));
                        }
                    }
                } else {
                    used.put(l.cluster(), next.clusters().get(l.cluster()));
                }
                Running now = listeners.get(l.name());
                if (now != null && now.spec().equals(l) && now.clusters().keySet().equals(used.keySet())
                        && used.entrySet().stream().allMatch(e -> sameTls(now.clusters().get(e.getKey()), e.getValue()))) {
                    continue;
                }
                if (now != null && l.http().isPresent() && now.spec().http().isPresent() && now.handle() instanceof dev.isthmus.proxy.http.HttpProxy proxy
                        && now.spec().address().equals(l.address()) && now.spec().mtls() == l.mtls()
                        && now.spec().plaintextToo() == l.plaintextToo()) {
                    // Routes, clusters or their TLS settings changed: an HTTP listener looks its clusters up per request, so
                    // the routes are swapped in place and the clusters replaced at the commit below, keeping the socket and its
                    // connections. (Restarting it closed the port for a moment, and the app's calls were refused.)
                    for (var c : used.values()) {
                        if (!httpUpstreams.containsKey(c.name())) {
                            balancers.computeIfAbsent(c.name(), n -> new AtomicReference<>(new ClusterLoadBalancer(c)));
                            httpUpstreams.put(c.name(), httpUpstream(c));
                        }
                    }
                    proxy.update(l.http().get());
                    var before = now.spec().http().get();
                    undo.add(() -> proxy.update(before));
                    updated.add(new Running(l, used, now.handle(), now.address()));
                    continue;
                }
                if (now != null) {
                    now.stop(); // the same address: stop the old one first so the port is free
                    toStop.add(now);
                }
                started.put(l.name(), startListener(l, used));
            }
        } catch (Exception e) {
            started.values().forEach(Running::stop);
            undo.forEach(Runnable::run); // routes swapped in place go back too
            // the listeners stopped to be replaced run again as they were: a refused set changes nothing
            for (var old : toStop) {
                try {
                    listeners.put(old.spec().name(), startListener(old.spec(), old.clusters()));
                } catch (Exception again) {
                    listeners.remove(old.spec().name());
                    org.slf4j.LoggerFactory.getLogger(RelayManager.class).error("event=listener_lost listener={} cause=\"{}\"", old.spec().name(),
                            again.toString());
                }
            }
            publishAddresses();
            throw new IllegalStateException("listener could not start: " + e.getMessage(), e);
        }
        // commit: new load balancers for changed clusters, stop removed listeners
        for (var c : next.clusters().values()) {
            var ref = balancers.get(c.name());
            if (ref == null) {
                balancers.put(c.name(), new AtomicReference<>(new ClusterLoadBalancer(c)));
            } else if (!ref.get().spec().equals(c)) {
                ref.set(ref.get().next(c)); // the endpoints that stay keep their load and outlier state
            }
            if (httpUpstreams.containsKey(c.name())) {
                try {
                    httpUpstreams.put(c.name(), httpUpstream(c));
                } catch (javax.net.ssl.SSLException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
        httpUpstreams.keySet().retainAll(next.clusters().keySet());
        for (var c : next.clusters().values()) {
            breakers(c).update(c.limits());
        }
        for (String gone : new java.util.ArrayList<>(breakers.keySet())) {
            if (!next.clusters().containsKey(gone)) {
                breakers.remove(gone);
                // its gauges go with it, or every cluster name ever seen would stay in /metrics
                meters.find("isthmus_circuit_breaker_in_use").tag("cluster", gone).meters().forEach(meters::remove);
            }
        }
        balancers.keySet().retainAll(next.clusters().keySet());
        for (var it = listeners.entrySet().iterator(); it.hasNext(); ) {
            var e = it.next();
            boolean kept = next.listeners().stream().anyMatch(l -> l.name().equals(e.getKey()));
            if (!kept) {
                e.getValue().stop();
                it.remove();
            }
        }
        listeners.putAll(started);
        updated.forEach(r -> listeners.put(r.spec().name(), r));
        publishAddresses();
        config = next;
    }

    private Running startListener(ProxyConfig.ListenerSpec l, Map<String, ProxyConfig.ClusterSpec> used) throws Exception {
        for (var c : used.values()) {
            balancers.computeIfAbsent(c.name(), n -> new AtomicReference<>(new ClusterLoadBalancer(c)));
        }
        if (l.http().isPresent()) {
            for (var c : used.values()) {
                httpUpstreams.put(c.name(), httpUpstream(c));
            }
            var proxy = dev.isthmus.proxy.http.HttpProxy.start(l.name(), loops, l.address(), l.http().get(), httpUpstreams::get,
                    l.mtls() ? SpiffeSslContexts.server(identity, id -> true, SpiffeSslContexts.H2, SpiffeSslContexts.HTTP_1_1) : null, l.plaintextToo(),
                    meters, java.time.Duration.ofSeconds(10),
                    java.time.Duration.ofSeconds(60), sourceCluster);
            return new Running(l, used, proxy, proxy.address());
        }
        var cluster = used.get(l.cluster());
        var out = tls(cluster);
        var relay = TcpRelay.start(l.name(), loops, l.address(), selector(cluster.name()), cluster.name(), 3, cluster.connectTimeout(), meters,
                l.mtls() ? new TcpRelay.Tls(SpiffeSslContexts.server(identity, id -> true), out.upstream(), out.upstreamSni()) : out);
        return new Running(l, used, relay, relay.address());
    }

    private dev.isthmus.proxy.lb.CircuitBreakers breakers(ProxyConfig.ClusterSpec c) {
        return breakers.computeIfAbsent(c.name(), n -> newBreakers(n, c.limits()));
    }

    /** A cluster's circuit breakers, with gauges of what they hold: connections, requests and retries in flight. */
    private dev.isthmus.proxy.lb.CircuitBreakers newBreakers(String cluster, ProxyConfig.Limits limits) {
        var cb = new dev.isthmus.proxy.lb.CircuitBreakers(limits);
        for (var kind : java.util.Map.<String, java.util.function.ToDoubleFunction<dev.isthmus.proxy.lb.CircuitBreakers>>of(
                "connections", dev.isthmus.proxy.lb.CircuitBreakers::connections, "requests", dev.isthmus.proxy.lb.CircuitBreakers::requests,
                "retries", dev.isthmus.proxy.lb.CircuitBreakers::retries).entrySet()) {
            io.micrometer.core.instrument.Gauge.builder("isthmus_circuit_breaker_in_use", cb, kind.getValue()).tag("cluster", cluster)
                    .tag("kind", kind.getKey()).description("What a cluster's circuit breakers hold now").register(meters);
        }
        return cb;
    }

    /**
     * Every cluster's endpoints with their load-balancing state ({@link ClusterLoadBalancer#json}),
     * as a JSON object by cluster name, for {@code /config_dump}.
     */
    public synchronized String endpointsJson() {
        var out = new StringBuilder("{");
        for (var e : new java.util.TreeMap<>(balancers).entrySet()) {
            if (out.length() > 1) {
                out.append(',');
            }
            out.append(dev.isthmus.proxy.JsonText.quote(e.getKey())).append(':').append(e.getValue().get().json());
        }
        return out.append('}').toString();
    }

    private UpstreamSelector selector(String cluster) {
        var ref = balancers.get(cluster);
        var cb = breakers.computeIfAbsent(cluster, n -> newBreakers(n, ref.get().spec().limits()));
        return new ClusterSelector(ref, cb);
    }

    /**
     * A cluster's selector for its listeners and HTTP upstreams: its connections admitted by the
     * cluster's breakers, everything else asked of its load balancer in force (replaced when the
     * cluster's config changes). It declares every method of {@link UpstreamSelector}: one left to
     * the interface's default would silently not reach the load balancer (as {@code dropped()} once
     * did); {@code RelayManagerTest} checks that none is.
     */
    static final class ClusterSelector implements UpstreamSelector {
        private final AtomicReference<ClusterLoadBalancer> ref;
        private final dev.isthmus.proxy.lb.CircuitBreakers cb;

        ClusterSelector(AtomicReference<ClusterLoadBalancer> ref, dev.isthmus.proxy.lb.CircuitBreakers cb) {
            this.ref = ref;
            this.cb = cb;
        }

        @Override
        public String admit() {
            return cb.tryConnection();
        }

        @Override
        public void leave() {
            cb.endConnection();
        }

        @Override
        public Optional<InetSocketAddress> pick(Set<InetSocketAddress> tried) {
            return ref.get().pick(tried);
        }

        @Override
        public void connected(InetSocketAddress a) {
            ref.get().connected(a);
        }

        @Override
        public void released(InetSocketAddress a) {
            ref.get().released(a);
        }

        @Override
        public void succeeded(InetSocketAddress a) {
            ref.get().succeeded(a);
        }

        @Override
        public String region(InetSocketAddress a) {
            return ref.get().region(a);
        }

        @Override
        public void failed(InetSocketAddress a) {
            ref.get().failed(a);
        }

        @Override
        public void refused(InetSocketAddress a) {
            ref.get().refused(a);
        }

        @Override
        public String dropped() {
            return ref.get().dropped();
        }
    }

    private TcpRelay.Tls tls(ProxyConfig.ClusterSpec cluster) throws javax.net.ssl.SSLException {
        if (!cluster.mtls()) {
            return TcpRelay.Tls.NONE;
        }
        return new TcpRelay.Tls(null, SpiffeSslContexts.client(identity, allowed(cluster)), cluster.sni().orElse(null));
    }

    /** The callee identities a cluster accepts: its expected SPIFFE IDs, or any the bundle vouches for when it names none. */
    private static java.util.function.Predicate<String> allowed(ProxyConfig.ClusterSpec cluster) {
        var ids = Set.copyOf(cluster.expectedSpiffeIds());
        return id -> ids.isEmpty() || ids.contains(id);
    }

    private dev.isthmus.proxy.http.HttpProxy.Upstream httpUpstream(ProxyConfig.ClusterSpec c) throws javax.net.ssl.SSLException {
        balancers.computeIfAbsent(c.name(), n -> new AtomicReference<>(new ClusterLoadBalancer(c)));
        // an HTTP cluster over mTLS offers its protocol by ALPN: h2 for HTTP/2 clusters, http/1.1 otherwise
        var t = c.mtls() ? new TcpRelay.Tls(null, SpiffeSslContexts.client(identity, allowed(c), c.http2() ? SpiffeSslContexts.H2
                : SpiffeSslContexts.HTTP_1_1), c.sni().orElse(null)) : tls(c);
        return new dev.isthmus.proxy.http.HttpProxy.Upstream(c.name(), selector(c.name()), t.upstream(), t.upstreamSni(), c.connectTimeout(),
                breakers(c), c.http2());
    }

    @Override
    public synchronized void close() {
        listeners.values().forEach(Running::stop);
        listeners.clear();
        publishAddresses();
    }
}
