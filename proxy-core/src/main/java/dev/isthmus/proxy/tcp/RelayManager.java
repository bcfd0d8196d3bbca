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
    private final MeterRegistry meters;
    private final Supplier<Optional<SvidClient.Svid>> identity;
    private final Map<String, Running> listeners = new LinkedHashMap<>();
    private final Map<String, AtomicReference<ClusterLoadBalancer>> balancers = new LinkedHashMap<>();
    private volatile ProxyConfig config = new ProxyConfig("none", java.util.List.of(), Map.of());

    private record Running(ProxyConfig.ListenerSpec spec, ProxyConfig.ClusterSpec cluster, TcpRelay relay) {
    }

    /** @param identity the workload's SVID, for clusters with an UpstreamTlsContext (none: such clusters are refused) */
    public RelayManager(EventLoops loops, MeterRegistry meters, Supplier<Optional<SvidClient.Svid>> identity) {
        this.loops = loops;
        this.meters = meters;
        this.identity = identity;
    }

    public ProxyConfig config() {
        return config;
    }

    /** The address a running listener is bound to. */
    public Optional<InetSocketAddress> address(String listener) {
        synchronized (this) {
            return Optional.ofNullable(listeners.get(listener)).map(r -> r.relay().address());
        }
    }

    private static boolean sameTls(ProxyConfig.ClusterSpec a, ProxyConfig.ClusterSpec b) {
        return a.mtls() == b.mtls() && a.expectedSpiffeIds().equals(b.expectedSpiffeIds()) && a.sni().equals(b.sni())
                && a.connectTimeout().equals(b.connectTimeout());
    }

    @Override
    public synchronized void apply(ProxyConfig next) throws Exception {
        for (var c : next.clusters().values()) {
            if (c.mtls() && identity == null) {
                throw new IllegalStateException("cluster '" + c.name() + "' asks for mTLS but this proxy has no workload identity (trust-bridge)");
            }
        }
        var started = new LinkedHashMap<String, Running>();
        var toStop = new java.util.ArrayList<Running>();
        try {
            for (var l : next.listeners()) {
                var cluster = next.clusters().get(l.cluster());
                Running now = listeners.get(l.name());
                if (now != null && now.spec().equals(l) && sameTls(now.cluster(), cluster)) {
                    continue;
                }
                if (now != null) {
                    // the same address: stop the old one first so the port is free
                    now.relay().close();
                    toStop.add(now);
                }
                var ref = balancers.computeIfAbsent(cluster.name(), n -> new AtomicReference<>(new ClusterLoadBalancer(cluster)));
                UpstreamSelector selector = new UpstreamSelector() {
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
                    public void failed(InetSocketAddress a) {
                        ref.get().failed(a);
                    }
                };
                var ids = Set.copyOf(cluster.expectedSpiffeIds());
                TcpRelay.Tls tls = cluster.mtls()
                        ? new TcpRelay.Tls(null, SpiffeSslContexts.client(identity, id -> ids.isEmpty() || ids.contains(id)), cluster.sni().orElse(null))
                        : TcpRelay.Tls.NONE;
                var relay = TcpRelay.start(l.name(), loops, l.address(), selector, cluster.name(), 3, cluster.connectTimeout(), meters, tls);
                started.put(l.name(), new Running(l, cluster, relay));
            }
        } catch (Exception e) {
            started.values().forEach(r -> r.relay().close());
            throw new IllegalStateException("listener could not start: " + e.getMessage(), e);
        }
        // commit: new load balancers for changed clusters, stop removed listeners
        for (var c : next.clusters().values()) {
            var ref = balancers.get(c.name());
            if (ref == null) {
                balancers.put(c.name(), new AtomicReference<>(new ClusterLoadBalancer(c)));
            } else if (!ref.get().spec().equals(c)) {
                ref.set(new ClusterLoadBalancer(c));
            }
        }
        balancers.keySet().retainAll(next.clusters().keySet());
        for (var it = listeners.entrySet().iterator(); it.hasNext(); ) {
            var e = it.next();
            boolean kept = next.listeners().stream().anyMatch(l -> l.name().equals(e.getKey()));
            if (!kept) {
                e.getValue().relay().close();
                it.remove();
            }
        }
        listeners.putAll(started);
        config = next;
    }

    @Override
    public synchronized void close() {
        listeners.values().forEach(r -> r.relay().close());
        listeners.clear();
    }
}
