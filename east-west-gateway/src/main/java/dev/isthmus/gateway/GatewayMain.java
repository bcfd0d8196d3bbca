package dev.isthmus.gateway;

import dev.isthmus.api.names.Ports;
import dev.isthmus.xds.google.protobuf.Struct;
import dev.isthmus.xds.google.protobuf.Value;
import dev.isthmus.proxy.ProxyProcess;
import dev.isthmus.proxy.config.xds.AdsClient;
import dev.isthmus.xds.envoy.config.core.v3.Locality;
import dev.isthmus.xds.envoy.config.core.v3.Node;
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
 * ({@code sni=host:port,...}: static exported endpoints, for running without a controller), {@code xds}
 * (host:port of the cluster's controller xDS server: the exported services and their endpoints come
 * from it and replace the static routes; the last accepted set is kept in
 * {@code <state-dir>/xds-last-good.pb} and served at start while the controller is away),
 * {@code instance} (the node id, default {@code east-west-gateway}), {@code state-dir} (default
 * {@code .}); with neither routes nor xDS nothing is exported and every connection is refused;
 * {@code max-connections} (10000), {@code max-connections-per-source} (1000),
 * {@code idle-timeout-seconds} (3600), {@code drain-timeout-seconds} (30: on shutdown, how long flows
 * in progress may finish).
 */
public final class GatewayMain {

    private static final Logger log = LoggerFactory.getLogger(GatewayMain.class);

    /** {@code /config_dump}: the routes in force (SNI to endpoints) and the xDS state. */
    static String dump(String cluster, SniRoutes routes, AdsClient ads) {
        var json = new StringBuilder("{\"cluster\":").append(quote(cluster)).append(",\"routes\":{");
        var described = routes.describe();
        described.forEach((sni, endpoints) -> {
            json.append(quote(sni)).append(":[");
            json.append(String.join(",", endpoints.stream().map(GatewayMain::quote).toList()));
            json.append("],");
        });
        if (!described.isEmpty()) {
            json.setLength(json.length() - 1);
        }
        json.append('}');
        if (ads != null) {
            json.append(",\"xds\":{\"applied\":").append(quote(ads.appliedVersion())).append(",\"last_error\":").append(quote(ads.lastError()))
                    .append('}');
        }
        return json.append('}').toString();
    }

    private static String quote(String s) {
        return dev.isthmus.proxy.JsonText.quote(s);
    }

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
        var current = new java.util.concurrent.atomic.AtomicReference<>(routes);
        var listener = process.own(SniPassthrough.start(process.loops(),
                settings.address("listen", "0.0.0.0:" + Ports.EAST_WEST_GATEWAY), current::get,
                Duration.ofSeconds(5), process.meters(), limits));
        var ads = settings.optional("xds").map(target -> {
            var node = Node.newBuilder().setId(settings.string("instance", "east-west-gateway")).setCluster("east-west-gateway")
                    .setLocality(Locality.newBuilder().setRegion(settings.string("cluster", "")))
                    .setMetadata(Struct.newBuilder().putFields("ISTHMUS_PROXY_TYPE", Value.newBuilder().setStringValue("gateway").build()))
                    .build();
            var client = process.own(new AdsClient(target, node, java.nio.file.Path.of(settings.string("state-dir", ".")).resolve("xds-last-good.pb"),
                    config -> {
                        var next = SniRoutes.fromConfig(config, current.get());
                        current.set(next);
                        log.info("event=gateway_routes_applied version={} services={}", config.version(), next.routes().size());
                        listener.closeDropped(next);
                    }, process.meters()));
            client.start();
            return client;
        });
        process.startAdmin(() -> true, () -> dump(settings.string("cluster", ""), current.get(), ads.orElse(null)));
        log.info("event=gateway_started cluster={} listen={} static_routes={} xds={}", settings.string("cluster", ""), listener.address(),
                routes.routes().size(), settings.string("xds", "none"));
        process.awaitShutdown();
    }
}
