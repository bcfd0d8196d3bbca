package dev.isthmus.sidecar;

import dev.isthmus.proxy.config.Settings;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;

/**
 * An explicit upstream listener: the app connects to {@code listen} (plain TCP on loopback) and the
 * sidecar carries the bytes to {@code destination} (another sidecar's inbound mTLS port), accepting
 * only a callee that proves {@code spiffeId}. Written {@code <listen>=<destination>@<spiffe-id>},
 * several separated by commas, e.g.
 * {@code 127.0.0.1:20043=127.0.0.1:20052@spiffe://us-east.acme.isthmus/ns/shop/sa/product-catalog}.
 */
public record Upstream(InetSocketAddress listen, InetSocketAddress destination, String spiffeId) {

    /** Parses the {@code upstreams} setting; an error names the entry and what is wrong with it. */
    public static List<Upstream> parseAll(String value) {
        var out = new ArrayList<Upstream>();
        if (value == null || value.isBlank()) {
            return out;
        }
        String[] entries = value.split(",");
        for (int i = 0; i < entries.length; i++) {
            String e = entries[i].strip();
            String where = "sidecar-lite: upstreams entry " + (i + 1) + " ('" + e + "')";
            int eq = e.indexOf('=');
            int at = e.indexOf('@', Math.max(eq, 0));
            if (eq <= 0 || at <= eq + 1 || at == e.length() - 1) {
                throw new Settings.SettingsException(where + " is not <listen host:port>=<destination host:port>@<spiffe-id>");
            }
            String id = e.substring(at + 1);
            if (!id.matches("spiffe://[a-z0-9.-]+/ns/[a-z0-9._-]+/sa/[a-z0-9._-]+")) {
                throw new Settings.SettingsException(where + ": '" + id + "' is not spiffe://<trust-domain>/ns/<namespace>/sa/<account>");
            }
            var upstream = new Upstream(address(e.substring(0, eq), where + " listen"), address(e.substring(eq + 1, at), where + " destination"), id);
            for (var other : out) {
                if (other.listen().equals(upstream.listen())) {
                    throw new Settings.SettingsException(where + ": listen address " + e.substring(0, eq) + " is used by an earlier entry");
                }
            }
            out.add(upstream);
        }
        return out;
    }

    static InetSocketAddress address(String hostPort, String where) {
        int colon = hostPort.lastIndexOf(':');
        if (colon <= 0) {
            throw new Settings.SettingsException(where + " '" + hostPort + "' is not host:port");
        }
        int port;
        try {
            port = Integer.parseInt(hostPort.substring(colon + 1));
        } catch (NumberFormatException ex) {
            throw new Settings.SettingsException(where + " '" + hostPort + "' has no numeric port");
        }
        if (port < 1 || port > 65535) {
            throw new Settings.SettingsException(where + " port " + port + " is outside 1-65535");
        }
        return new InetSocketAddress(hostPort.substring(0, colon), port);
    }
}
