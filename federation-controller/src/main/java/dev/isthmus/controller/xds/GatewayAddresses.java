package dev.isthmus.controller.xds;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.jboss.logging.Logger;

/**
 * Other clusters' gateway addresses as the proxies can dial them. A cluster may announce its gateway
 * by DNS name (a cloud LoadBalancer's is often a name, not an address), but an endpoint in EDS is an
 * IP address (a sidecar refuses a name there, as Envoy does). So each controller resolves the names
 * itself, as Istio's control plane resolves gateway host names: off the rebuild thread, every
 * {@code refresh}, and at once for a name seen for the first time. The endpoint is the name's first
 * address in order (IPv4 first), the same in every controller; {@link #resolve} answers from what was
 * last resolved, so a rebuild never waits on DNS, and a change of address changes the xDS inputs. A
 * name that does not resolve (yet) has no address: that cluster is left out of failover (as a
 * cluster without a gateway address is) until it resolves. An address given as an IP is used as is.
 */
final class GatewayAddresses implements AutoCloseable {

    private static final Logger LOG = Logger.getLogger(GatewayAddresses.class);

    private final Map<String, String> resolved = new ConcurrentHashMap<>();
    private final Function<String, InetAddress[]> lookup;
    private final ScheduledExecutorService resolver = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("gateway-dns").unstarted(r));

    GatewayAddresses(Duration refresh) {
        this(refresh, host -> {
            try {
                return InetAddress.getAllByName(host);
            } catch (UnknownHostException e) {
                return new InetAddress[0];
            }
        });
    }

    GatewayAddresses(Duration refresh, Function<String, InetAddress[]> lookup) {
        this.lookup = lookup;
        this.refresh = refresh;
    }

    private final Duration refresh;
    private final java.util.concurrent.atomic.AtomicBoolean refreshing = new java.util.concurrent.atomic.AtomicBoolean();

    /**
     * {@code host:port} with the host as an IP address: as given when it is one, else the name's
     * address as last resolved; empty when there is none (yet), or when {@code hostPort} is empty.
     */
    String resolve(String hostPort) {
        var hp = ProxyResources.hostPort(hostPort);
        if (hp == null) {
            return "";
        }
        if (isAddress(hp.host())) {
            return hostPort;
        }
        String known = resolved.get(hostPort);
        if (known == null) {
            resolved.put(hostPort, "");
            resolver.execute(() -> lookUp(hostPort));
            if (refreshing.compareAndSet(false, true)) {
                resolver.scheduleWithFixedDelay(() -> resolved.keySet().forEach(this::lookUp), refresh.toMillis(), refresh.toMillis(),
                        TimeUnit.MILLISECONDS);
            }
            return "";
        }
        return known;
    }

    private void lookUp(String hostPort) {
        var hp = ProxyResources.hostPort(hostPort);
        var addresses = lookup.apply(hp.host());
        String now = Arrays.stream(addresses).sorted(Comparator.comparing((InetAddress a) -> a.getAddress().length)
                .thenComparing(InetAddress::getHostAddress)).findFirst()
                .map(a -> a.getHostAddress() + ":" + hp.port()).orElse("");
        String before = resolved.put(hostPort, now);
        if (!now.equals(before)) {
            if (now.isEmpty()) {
                LOG.warnf("event=gateway_address_unresolved gateway=%s (the cluster behind it is left out of failover until it resolves)", hostPort);
            } else {
                LOG.infof("event=gateway_address_resolved gateway=%s address=%s", hostPort, now);
            }
        }
    }

    static boolean isAddress(String host) {
        return host.matches("[0-9.]+") || host.contains(":");
    }

    @Override
    public void close() {
        resolver.shutdownNow();
    }
}
