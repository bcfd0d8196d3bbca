package dev.isthmus.shop;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.function.Function;

/**
 * A demo shop service: a small HTTP server whose every answer names the service, cluster, region
 * and instance that served it, so that routing and failover can be seen from the outside.
 *
 * <p>Settings come from the environment: {@code SHOP_PORT} (required), {@code SHOP_HOST}
 * (default 127.0.0.1), {@code SHOP_CLUSTER}, {@code SHOP_REGION}, {@code SHOP_INSTANCE}, and
 * {@code SHOP_UPSTREAM_<NAME>=http://host:port} for the services it calls (through its sidecar), or
 * {@code SHOP_MESH_PROXY=host:port}: its sidecar's outbound listener, used as an HTTP proxy for
 * {@code http://<name>.<SHOP_NAMESPACE, default shop>/...}, so the mesh routes each call by service name.
 * A service with gRPC methods ({@link #grpc}) serves them on {@code SHOP_GRPC_PORT} (HTTP/2 cleartext);
 * {@link #callGrpc} calls another service's gRPC port through the same sidecar (see {@link ShopGrpc}).
 */
public final class ShopService {

    private final String service;
    private final Map<String, String> env;
    private final HttpServer server;
    private final HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(2)).build();
    private final HttpClient meshClient;
    private final Map<String, java.util.function.BiFunction<String, String, String>> grpcMethods = new java.util.TreeMap<>();
    private final ShopGrpc grpc = new ShopGrpc();
    private io.grpc.Server grpcServer;

    private ShopService(String service, Map<String, String> env, HttpServer server) {
        this.service = service;
        this.env = env;
        this.server = server;
        String proxy = env.get("SHOP_MESH_PROXY");
        this.meshClient = proxy == null || proxy.isBlank() ? null : HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(2)).proxy(java.net.ProxySelector.of(new java.net.InetSocketAddress(
                        proxy.substring(0, proxy.lastIndexOf(':')), Integer.parseInt(proxy.substring(proxy.lastIndexOf(':') + 1))))).build();
    }

    /** Binds the service; routes are added with {@link #route}. */
    public static ShopService create(String service, Map<String, String> env) throws IOException {
        String portText = env.get("SHOP_PORT");
        if (portText == null) {
            throw new IllegalArgumentException(service + ": SHOP_PORT is required (the port to listen on)");
        }
        int port;
        try {
            port = Integer.parseInt(portText);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(service + ": SHOP_PORT must be a number, got '" + portText + "'");
        }
        var server = HttpServer.create(new InetSocketAddress(env.getOrDefault("SHOP_HOST", "127.0.0.1"), port), 256);
        server.setExecutor(Executors.newVirtualThreadPerTaskExecutor());
        var shop = new ShopService(service, env, server);
        shop.route("/healthz", req -> Answer.ok(Map.of("status", "UP")));
        shop.route("/", req -> Answer.ok(Map.of("message", "hello from " + service)));
        return shop;
    }

    public ShopService route(String path, Function<HttpExchange, Answer> handler) {
        server.createContext(path, exchange -> {
            Answer answer;
            try {
                answer = handler.apply(exchange);
            } catch (RuntimeException e) {
                answer = new Answer(500, Map.of("error", String.valueOf(e.getMessage())));
            }
            respond(exchange, answer);
        });
        return this;
    }

    /**
     * Serves the unary gRPC method {@code fullMethod} (JSON messages): the handler gets the request
     * JSON; its answer is sent with the same fields as an HTTP answer (service, cluster, region,
     * instance, caller). A status other than 200 becomes a gRPC error.
     */
    public ShopService grpc(String fullMethod, Function<String, Answer> handler) {
        grpcMethods.put(fullMethod, (request, caller) -> {
            Answer answer = handler.apply(request);
            if (answer.status() != 200) {
                throw new IllegalStateException(Json.write(answer.fields()));
            }
            return Json.write(envelope(caller, answer));
        });
        return this;
    }

    /**
     * Calls the unary gRPC method {@code fullMethod} of {@code upstream} at its service port, through
     * the sidecar's outbound listener ({@code SHOP_MESH_PROXY}): the mesh routes it by
     * {@code <upstream>.<namespace>:<servicePort>}.
     */
    public Answer callGrpc(String upstream, int servicePort, String fullMethod, String request) {
        String proxy = env.get("SHOP_MESH_PROXY");
        if (proxy == null || proxy.isBlank()) {
            return new Answer(502, Map.of("error", "no mesh proxy (SHOP_MESH_PROXY) for gRPC to " + upstream));
        }
        String authority = upstream + "." + env.getOrDefault("SHOP_NAMESPACE", "shop") + ":" + servicePort;
        try {
            String body = grpc.call(proxy, authority, fullMethod, request);
            return new Answer(200, Map.of("upstream", upstream, "upstreamProtocol", "grpc", "upstreamStatus", "OK", "upstreamBody", new Json.Raw(body)));
        } catch (io.grpc.StatusRuntimeException e) {
            return new Answer(ShopGrpc.httpStatus(e.getStatus().getCode()), Map.of("upstream", upstream, "upstreamProtocol", "grpc",
                    "upstreamStatus", e.getStatus().getCode().name(), "error", upstream + " gRPC " + fullMethod + ": " + e.getStatus()));
        }
    }

    /** Calls an upstream service by its short name through the address configured for it. */
    public Answer call(String upstream, String path) {
        String base = env.get("SHOP_UPSTREAM_" + upstream.toUpperCase().replace('-', '_'));
        HttpClient via = client;
        if (base == null && meshClient != null) {
            // through the sidecar's outbound listener, as an HTTP proxy: it routes on the service's name
            base = "http://" + upstream + "." + env.getOrDefault("SHOP_NAMESPACE", "shop");
            via = meshClient;
        }
        if (base == null) {
            return new Answer(502, Map.of("error", "no upstream configured for " + upstream));
        }
        try {
            var res = via.send(HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofSeconds(5)).build(),
                    HttpResponse.BodyHandlers.ofString());
            return new Answer(res.statusCode(), Map.of("upstream", upstream, "upstreamStatus", res.statusCode(),
                    "upstreamBody", new Json.Raw(res.body())));
        } catch (IOException e) {
            return new Answer(502, Map.of("error", upstream + " unreachable: " + e));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Answer(503, Map.of("error", "interrupted"));
        }
    }

    public int port() {
        return server.getAddress().getPort();
    }

    public void start() throws IOException {
        if (!grpcMethods.isEmpty()) {
            String grpcPort = env.get("SHOP_GRPC_PORT");
            int port;
            try {
                port = Integer.parseInt(grpcPort == null ? "" : grpcPort);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(service + ": SHOP_GRPC_PORT must be the port of its gRPC methods " + grpcMethods.keySet()
                        + ", got " + (grpcPort == null ? "nothing" : "'" + grpcPort + "'"));
            }
            grpcServer = ShopGrpc.serve(new InetSocketAddress(env.getOrDefault("SHOP_HOST", "127.0.0.1"), port), grpcMethods);
            System.out.printf("event=grpc_started service=%s address=%s methods=%s%n", service, grpcServer.getListenSockets(), grpcMethods.keySet());
        }
        server.start();
        System.out.printf("event=started service=%s cluster=%s instance=%s address=%s%n",
                service, env.getOrDefault("SHOP_CLUSTER", "local"), instance(), server.getAddress());
    }

    public void stop() {
        server.stop(0);
        grpc.close();
        if (grpcServer != null) {
            grpcServer.shutdownNow();
        }
    }

    private String instance() {
        return env.getOrDefault("SHOP_INSTANCE", service + "-" + ProcessHandle.current().pid());
    }

    /** An answer's fields after those that say who served it, and for whom. */
    private Map<String, Object> envelope(String caller, Answer answer) {
        var body = new LinkedHashMap<String, Object>();
        body.put("service", service);
        body.put("cluster", env.getOrDefault("SHOP_CLUSTER", "local"));
        body.put("region", env.getOrDefault("SHOP_REGION", "local"));
        body.put("instance", instance());
        if (caller != null) {
            body.put("caller", caller);
        }
        body.putAll(answer.fields());
        return body;
    }

    private void respond(HttpExchange exchange, Answer answer) throws IOException {
        var body = envelope(exchange.getRequestHeaders().getFirst("x-isthmus-peer-identity"), answer);
        byte[] bytes = Json.write(body).getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("content-type", "application/json");
        exchange.sendResponseHeaders(answer.status(), bytes.length);
        try (var out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }

    /** A status and the fields to add to the answer. */
    public record Answer(int status, Map<String, Object> fields) {
        public static Answer ok(Map<String, Object> fields) {
            return new Answer(200, fields);
        }
    }
}
