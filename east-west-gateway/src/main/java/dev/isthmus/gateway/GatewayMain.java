package dev.isthmus.gateway;

import dev.isthmus.api.names.Ports;
import dev.isthmus.proxy.ProxyProcess;
import dev.isthmus.proxy.config.Settings;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * east-west-gateway: takes TLS connections from other clusters on 15443 and routes them by SNI to
 * local workloads without terminating TLS.
 *
 * <p>Settings ({@code --name=value} or {@code ISTHMUS_NAME}): {@code cluster}, {@code listen}
 * (default 0.0.0.0:15443), {@code admin} (default 127.0.0.1:15000), {@code routes}
 * ({@code sni=host:port,...}: the exported local endpoints; empty means nothing is exported and every
 * connection is refused), {@code max-connections} (10000), {@code max-connections-per-source} (1000),
 * {@code idle-timeout-seconds} (3600), {@code drain-timeout-seconds} (30: on shutdown, how long flows
 * in progress may finish).
 */
public final class GatewayMain {

    private static final Logger log = LoggerFactory.getLogger(GatewayMain.class);

    public static void main(String[] args) throws Exception {
        Settings settings;
        SniRoutes routes;
        try {
            settings = Settings.from("east-west-gateway", args, System.getenv());
            routes = SniRoutes.parse(settings.string("routes", ""));
        } catch (IllegalArgumentException e) {
            System.err.println("east-west-gateway: " + e.getMessage());
            System.exit(2);
            return;
        }
        var process = new ProxyProcess("east-west-gateway", settings);
        SniPassthrough.Limits limits;
        try {
            var d = SniPassthrough.Limits.DEFAULT;
            limits = new SniPassthrough.Limits(Integer.parseInt(settings.string("max-connections", Integer.toString(d.maxConnections()))),
                    Integer.parseInt(settings.string("max-connections-per-source", Integer.toString(d.maxPerSource()))),
                    Duration.ofSeconds(Long.parseLong(settings.string("idle-timeout-seconds", Long.toString(d.idleTimeout().toSeconds())))),
                    Duration.ofSeconds(Long.parseLong(settings.string("drain-timeout-seconds", Long.toString(d.drainTimeout().toSeconds())))));
        } catch (NumberFormatException e) {
            System.err.println("east-west-gateway: max-connections, max-connections-per-source, idle-timeout-seconds and drain-timeout-seconds"
                    + " must be whole numbers: " + e.getMessage());
            System.exit(2);
            return;
        }
        var listener = process.own(SniPassthrough.start(process.loops(),
                settings.address("listen", "0.0.0.0:" + Ports.EAST_WEST_GATEWAY), () -> routes,
                Duration.ofSeconds(5), process.meters(), limits));
        var dump = new StringBuilder("{\"cluster\":\"").append(settings.string("cluster", "")).append("\",\"routes\":{");
        routes.routes().forEach((sni, addr) -> dump.append('"').append(sni).append("\":\"").append(addr).append("\","));
        if (!routes.routes().isEmpty()) {
            dump.setLength(dump.length() - 1);
        }
        dump.append("}}");
        process.startAdmin(() -> true, dump::toString);
        log.info("event=gateway_started cluster={} listen={} routes={}", settings.string("cluster", ""), listener.address(), routes.routes().size());
        process.awaitShutdown();
    }
}
