package dev.isthmus.api.names;

import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * The names the controller's xDS resources and the east-west gateway agree on (DESIGN.md, "Config to
 * the proxies" and "east-west-gateway").
 *
 * <ul>
 *   <li>Outbound clusters, as Envoy/Istio name them: {@code outbound|<port>|<subset>|<host>}, subset
 *       empty for the whole service.</li>
 *   <li>The SNI a caller's sidecar sends to a remote cluster's gateway, Istio's convention:
 *       {@code outbound_.<port>_.<subset>_.<name>.<namespace>.svc.cluster.local}, subset {@code _}
 *       for the whole service. The gateway's clusters carry these names, so the SNI names the cluster.</li>
 *   <li>{@code <port>} is the service port, the same in every cluster (namespace sameness): the
 *       endpoint label {@value #SERVICE_PORT_LABEL}, {@value #DEFAULT_SERVICE_PORT} when absent. It is
 *       not the port of the endpoint's sidecar, which differs between clusters.</li>
 *   <li>A subset is the value of the endpoint label {@value #SUBSET_LABEL}.</li>
 * </ul>
 */
public final class MeshNames {

    public static final String SERVICE_PORT_LABEL = "isthmus.dev/service-port";
    public static final int DEFAULT_SERVICE_PORT = 80;
    public static final String SUBSET_LABEL = "version";

    private static final Pattern GATEWAY_SNI = Pattern.compile(
            "outbound_\\.([0-9]{1,5})_\\.([A-Za-z0-9.-]*)_\\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\\.svc\\.cluster\\.local");

    private MeshNames() {
    }

    /** What a gateway SNI names. {@code subset} is empty for the whole service. */
    public record GatewayTarget(int port, String subset, ServiceName service) {
    }

    /** The service port an endpoint's labels declare ({@value #DEFAULT_SERVICE_PORT} when none or not a port number). */
    public static int servicePort(Map<String, String> labels) {
        String v = labels.get(SERVICE_PORT_LABEL);
        if (v != null) {
            try {
                int p = Integer.parseInt(v.strip());
                if (p >= 1 && p <= 65535) {
                    return p;
                }
            } catch (NumberFormatException ignored) {
                // falls back to the default
            }
        }
        return DEFAULT_SERVICE_PORT;
    }

    /** Istio's SNI for a service port and subset ({@code ""} for the whole service). */
    public static String gatewaySni(int port, String subset, ServiceName service) {
        return "outbound_." + port + "_." + (subset.isEmpty() ? "" : subset) + "_." + service.name() + "." + service.namespace()
                + ".svc.cluster.local";
    }

    /** Parses a gateway SNI; empty if the name does not follow the convention. */
    public static Optional<GatewayTarget> parseGatewaySni(String sni) {
        var m = GATEWAY_SNI.matcher(sni.toLowerCase(java.util.Locale.ROOT));
        if (!m.matches()) {
            return Optional.empty();
        }
        int port = Integer.parseInt(m.group(1));
        if (port < 1 || port > 65535) {
            return Optional.empty();
        }
        return Optional.of(new GatewayTarget(port, m.group(2), new ServiceName(m.group(5), m.group(3))));
    }

    /** Envoy's outbound cluster name, {@code outbound|<port>|<subset>|<host>}. */
    public static String outboundCluster(int port, String subset, ServiceName service) {
        return "outbound|" + port + "|" + subset + "|" + service.clusterLocalHost();
    }
}
