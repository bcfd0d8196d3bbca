package dev.isthmus.controller.registry;

import dev.isthmus.api.names.ServiceName;
import dev.isthmus.api.registry.Endpoint;
import dev.isthmus.controller.config.ControllerConfig;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * One endpoint as an operator or a sidecar describes it (a registration body, an entry of the static
 * file): the fields that are not the cluster's own. {@link #problem} says what is wrong with it, in
 * words naming the field; {@link #toEndpoint} completes it with the cluster's name and locality.
 */
public record EndpointSpec(String service, String instance, String address, Integer port, String protocol, Map<String, String> labels,
        String zone, Boolean healthy, Integer weight, String identity) {

    private static final Pattern INSTANCE = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,252}");
    static final Set<String> PROTOCOLS = Set.of("http", "http2", "grpc", "tcp");

    /** What is wrong with this spec, or null if nothing is. */
    public String problem() {
        if (service == null) {
            return "field 'service' is required (namespace/name)";
        }
        try {
            ServiceName.parse(service);
        } catch (IllegalArgumentException e) {
            return "field 'service': " + e.getMessage();
        }
        if (instance == null || !INSTANCE.matcher(instance).matches()) {
            return "field 'instance' must be 1-253 letters, digits, '.', '_' or '-', got " + quote(instance);
        }
        if (address == null || address.isBlank()) {
            return "field 'address' is required (host or IP of the sidecar's inbound listener)";
        }
        if (port == null || port < 1 || port > 65535) {
            return "field 'port' must be 1-65535, got " + port;
        }
        if (protocol != null && !PROTOCOLS.contains(protocol)) {
            return "field 'protocol' must be one of " + PROTOCOLS + ", got " + quote(protocol);
        }
        String servicePort = labels == null ? null : labels.get(dev.isthmus.api.names.MeshNames.SERVICE_PORT_LABEL);
        if (servicePort != null && !servicePort.matches("[1-9][0-9]{0,4}") || servicePort != null && Integer.parseInt(servicePort) > 65535) {
            return "label '" + dev.isthmus.api.names.MeshNames.SERVICE_PORT_LABEL + "' must be a port number 1-65535, got " + quote(servicePort);
        }
        if (weight != null && (weight < 1 || weight > 128)) {
            return "field 'weight' must be 1-128, got " + weight;
        }
        return null;
    }

    private static String quote(String s) {
        return s == null ? "nothing" : "'" + s + "'";
    }

    /** The endpoint in this cluster; call only when {@link #problem} is null. */
    public Endpoint toEndpoint(ControllerConfig config) {
        String cluster = config.cluster().name();
        return new Endpoint(service, instance, cluster, address, port, protocol == null ? "http" : protocol, labels,
                config.cluster().region().orElse(cluster), zone == null ? config.cluster().zone() : zone, healthy == null || healthy,
                weight == null ? 1 : weight, identity == null ? "" : identity);
    }
}
