package dev.isthmus.proxy.config.xds;

import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * What a proxy runs, translated from xDS v3 resources (a static bootstrap file now, the ADS stream
 * later) by {@link XdsTranslator}: immutable, checked, and independent of the protos.
 */
public record ProxyConfig(String version, List<ListenerSpec> listeners, Map<String, ClusterSpec> clusters) {

    public ProxyConfig {
        listeners = List.copyOf(listeners);
        clusters = Map.copyOf(clusters);
    }

    /** A TCP proxy listener: connections to {@code address} go to {@code cluster}. */
    public record ListenerSpec(String name, InetSocketAddress address, String cluster) {
    }

    public enum LbPolicy { ROUND_ROBIN, LEAST_REQUEST }

    /**
     * An upstream cluster.
     *
     * @param mtls whether connections to it are mTLS (an UpstreamTlsContext)
     * @param expectedSpiffeIds the URI SANs the callee must prove (empty: any identity the bundle vouches for)
     * @param sni the server name sent (the east-west gateway routes on it), if any
     * @param overprovisioningFactor Envoy's, in percent (default 140)
     */
    public record ClusterSpec(String name, LbPolicy lbPolicy, Duration connectTimeout, boolean mtls, List<String> expectedSpiffeIds,
            Optional<String> sni, List<EndpointSpec> endpoints, int overprovisioningFactor) {

        public ClusterSpec {
            expectedSpiffeIds = List.copyOf(expectedSpiffeIds);
            endpoints = List.copyOf(endpoints);
        }
    }

    /** An endpoint of a cluster, with its locality, priority (0 is the highest), weight and health from the assignment. */
    public record EndpointSpec(InetSocketAddress address, Locality locality, int priority, int weight, boolean healthy) {
    }

    public record Locality(String region, String zone, String subZone) {
        public static final Locality NONE = new Locality("", "", "");
    }
}
