package dev.isthmus.gateway;

import java.net.InetSocketAddress;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * Which SNI names the gateway serves and where each goes: a local endpoint that came from the
 * registry (never an address taken from the connection). Immutable.
 *
 * <p>Text form: {@code sni=host:port,sni=host:port}.
 */
public record SniRoutes(Map<String, InetSocketAddress> routes) {

    public SniRoutes {
        routes = Map.copyOf(routes);
    }

    public static SniRoutes parse(String text) {
        var routes = new LinkedHashMap<String, InetSocketAddress>();
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
            if (routes.put(sni, new InetSocketAddress(e.substring(eq + 1, colon), port)) != null) {
                throw new IllegalArgumentException("route for SNI '" + sni + "' is given twice");
            }
        }
        return new SniRoutes(routes);
    }

    public Optional<InetSocketAddress> lookup(String sni) {
        return Optional.ofNullable(routes.get(sni.toLowerCase()));
    }
}
