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
 * connection is refused).
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
        var listener = process.own(SniPassthrough.start(process.loops(),
                settings.address("listen", "0.0.0.0:" + Ports.EAST_WEST_GATEWAY), () -> routes,
                Duration.ofSeconds(5), process.meters()));
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
