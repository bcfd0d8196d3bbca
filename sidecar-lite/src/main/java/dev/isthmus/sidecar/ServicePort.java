package dev.isthmus.sidecar;

import dev.isthmus.proxy.config.Settings;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * A further port of the workload's service, beside the first one ({@code app}, {@code inbound},
 * {@code protocol}): as a Kubernetes Service lists several ports, e.g. HTTP on 80 and gRPC on 9090.
 * Each gets its own inbound listener (mTLS, from the controller over xDS) to its own app port, and is
 * registered as its own endpoint with the label {@code isthmus.dev/service-port}; callers reach it as
 * {@code <name>.<namespace>:<service port>}, and other clusters through the east-west gateway under
 * the SNI {@code outbound_.<service port>_._.<name>.<namespace>.svc.cluster.local}.
 *
 * <p>The {@code ports} setting: entries separated by {@code ;}, each
 * {@code <service port>/<protocol> app=<host:port> inbound=<host:port>}, e.g.
 * {@code 9090/grpc app=127.0.0.1:8090 inbound=127.0.0.1:15016}. Protocols: {@code http},
 * {@code http2}, {@code grpc}.
 */
public record ServicePort(int servicePort, String protocol, InetSocketAddress app, InetSocketAddress inbound) {

    static final Set<String> PROTOCOLS = Set.of("http", "http2", "grpc");

    /** The listener the controller sends for this port. */
    public String listenerName() {
        return "inbound|" + servicePort;
    }

    /**
     * Parses the {@code ports} setting; an error names the entry and what is wrong with it.
     *
     * @param firstServicePort the service port of the sidecar's first port (a further one may not repeat it)
     * @param taken addresses already used by the sidecar's other listeners
     */
    public static List<ServicePort> parseAll(String value, int firstServicePort, Set<InetSocketAddress> taken) {
        var out = new ArrayList<ServicePort>();
        if (value == null || value.isBlank()) {
            return out;
        }
        String[] entries = value.split(";");
        for (int i = 0; i < entries.length; i++) {
            String e = entries[i].strip();
            String where = "sidecar-lite: ports entry " + (i + 1) + " ('" + e + "')";
            String[] words = e.split("\\s+");
            int slash = words[0].indexOf('/');
            if (words.length != 3 || slash <= 0) {
                throw new Settings.SettingsException(where + " is not <service port>/<protocol> app=<host:port> inbound=<host:port>");
            }
            int port;
            try {
                port = Integer.parseInt(words[0].substring(0, slash));
            } catch (NumberFormatException x) {
                throw new Settings.SettingsException(where + ": service port '" + words[0].substring(0, slash) + "' is not a number");
            }
            if (port < 1 || port > 65535) {
                throw new Settings.SettingsException(where + ": service port " + port + " is outside 1-65535");
            }
            String protocol = words[0].substring(slash + 1);
            if (!PROTOCOLS.contains(protocol)) {
                throw new Settings.SettingsException(where + ": protocol '" + protocol + "' is not one of " + new java.util.TreeSet<>(PROTOCOLS));
            }
            InetSocketAddress app = null;
            InetSocketAddress inbound = null;
            for (int w = 1; w < 3; w++) {
                String word = words[w];
                if (word.startsWith("app=") && app == null) {
                    app = Upstream.address(word.substring(4), where + " app");
                } else if (word.startsWith("inbound=") && inbound == null) {
                    inbound = Upstream.address(word.substring(8), where + " inbound");
                } else {
                    throw new Settings.SettingsException(where + ": '" + word + "' is not app=<host:port> or inbound=<host:port> (each once)");
                }
            }
            if (port == firstServicePort || out.stream().anyMatch(o -> o.servicePort() == port)) {
                throw new Settings.SettingsException(where + ": service port " + port + " is already declared");
            }
            var sp = new ServicePort(port, protocol, app, inbound);
            if (taken.contains(inbound) || out.stream().anyMatch(o -> o.inbound().equals(sp.inbound()))) {
                throw new Settings.SettingsException(where + ": inbound address " + inbound.getHostString() + ":" + inbound.getPort()
                        + " is used by another listener");
            }
            out.add(sp);
        }
        return out;
    }
}
