package dev.isthmus.gateway;

import dev.isthmus.api.names.MeshNames;
import dev.isthmus.proxy.config.xds.ProxyConfig;
import dev.isthmus.proxy.lb.ClusterLoadBalancer;
import dev.isthmus.proxy.tcp.UpstreamSelector;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Which SNI names the gateway serves and, for each, the load balancer over that service's local
 * endpoints: addresses that came from the registry (the controller's xDS, or the operator's static
 * routes), never from the connection. Immutable; the load balancers keep their state (outlier
 * ejections, active counts) across updates when a cluster's definition did not change.
 *
 * <p>From xDS ({@link #fromConfig}): every Cluster must be named by Istio's SNI
 * ({@code outbound_.<port>_.<subset>_.<name>.<namespace>.svc.cluster.local}); the gateway takes no
 * Listeners. From text ({@link #parse}): {@code sni=host:port,sni=host:port}, one endpoint each.
 */
public record SniRoutes(Map<String, UpstreamSelector> routes) {

    public SniRoutes {
        routes = Map.copyOf(routes);
    }

    public static final SniRoutes NONE = new SniRoutes(Map.of());

    public static SniRoutes parse(String text) {
        var routes = new LinkedHashMap<String, UpstreamSelector>();
        if (text == null || text.isBlank()) {
            return new SniRoutes(routes);
        }
        for (String entry : text.split(",")) {
            String e = entry.strip();
            int eq = e.indexOf('=');
            int colon = e.lastIndexOf(':');
            if (eq <= 0 || colon < eq + 2) {
                throw new IllegalArgumentException("route '" + e + "' is not of the form sni=host:port");
            }
            int port;
            try {
                port = Integer.parseInt(e.substring(colon + 1));
            } catch (NumberFormatException x) {
                throw new IllegalArgumentException("route '" + e + "': port is not a number");
            }
            String sni = e.substring(0, eq).toLowerCase();
            var address = new InetSocketAddress(e.substring(eq + 1, colon), port);
            var spec = new ProxyConfig.ClusterSpec(sni, ProxyConfig.LbPolicy.ROUND_ROBIN, Duration.ofSeconds(2), false, List.of(), Optional.empty(),
                    List.of(new ProxyConfig.EndpointSpec(address, ProxyConfig.Locality.NONE, 0, 1, true)), 140);
            if (routes.put(sni, new ClusterLoadBalancer(spec)) != null) {
                throw new IllegalArgumentException("route for SNI '" + sni + "' is given twice");
            }
        }
        return new SniRoutes(routes);
    }

    /**
     * The routes an xDS set describes; the load balancers of {@code previous} are kept for clusters
     * whose definition is unchanged.
     *
     * @throws IllegalArgumentException naming every resource and field the gateway cannot use
     */
    public static SniRoutes fromConfig(ProxyConfig config, SniRoutes previous) {
        var errors = new ArrayList<String>();
        for (var l : config.listeners()) {
            errors.add("Listener '" + l.name() + "': the east-west gateway takes no listeners (its SNI listener is configured locally)");
        }
        var routes = new LinkedHashMap<String, UpstreamSelector>();
        config.clusters().forEach((name, spec) -> {
            if (MeshNames.parseGatewaySni(name).isEmpty()) {
                errors.add("Cluster '" + name + "': name: the gateway routes by SNI, so a cluster must be named"
                        + " outbound_.<port>_.<subset>_.<name>.<namespace>.svc.cluster.local");
                return;
            }
            if (spec.mtls()) {
                errors.add("Cluster '" + name + "': transport_socket: the gateway passes TLS through and never originates it; give no TLS context");
                return;
            }
            var held = previous.routes().get(name.toLowerCase());
            routes.put(name.toLowerCase(), held instanceof ClusterLoadBalancer lb && lb.spec().equals(spec) ? held : new ClusterLoadBalancer(spec));
        });
        if (!errors.isEmpty()) {
            throw new IllegalArgumentException(String.join("\n", errors));
        }
        return new SniRoutes(routes);
    }

    public Optional<UpstreamSelector> lookup(String sni) {
        return Optional.ofNullable(routes.get(sni.toLowerCase()));
    }

    /** Endpoints per SNI, for {@code /config_dump}. */
    public Map<String, List<String>> describe() {
        var out = new java.util.TreeMap<String, List<String>>();
        routes.forEach((sni, selector) -> out.put(sni, selector instanceof ClusterLoadBalancer lb
                ? lb.spec().endpoints().stream().map(e -> e.address().getHostString() + ":" + e.address().getPort()
                        + (e.healthy() ? "" : " (unhealthy)")).toList()
                : List.of("?")));
        return out;
    }
}
