package dev.isthmus.sidecar;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** The registrar against a real HTTP server standing in for the controller's workload API. */
class WorkloadRegistrarTest {

    @Test
    void registersWithTheCurrentCredentialAndHealthThenDeregisters() throws Exception {
        List<String> seen = new CopyOnWriteArrayList<>();
        var server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/api/v1/workloads", ex -> {
            String body = new String(ex.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
            seen.add(ex.getRequestMethod() + " " + ex.getRequestURI().getPath() + " auth=" + ex.getRequestHeaders().getFirst("authorization")
                    + " type=" + ex.getRequestHeaders().getFirst("content-type") + " " + body);
            boolean refuse = body.contains("\"healthy\":false");
            byte[] answer = refuse ? "no thanks".getBytes(StandardCharsets.UTF_8) : new byte[0];
            ex.sendResponseHeaders(ex.getRequestMethod().equals("DELETE") ? 204 : refuse ? 403 : 200, answer.length == 0 ? -1 : answer.length);
            ex.getResponseBody().write(answer);
            ex.close();
        });
        server.start();
        try {
            var token = new AtomicReference<>("first-token");
            var healthy = new AtomicBoolean(true);
            var registrar = new WorkloadRegistrar(URI.create("http://127.0.0.1:" + server.getAddress().getPort()), "shop/catalog", "catalog-1",
                    "127.0.0.1", 8080, "http", Map.of("version", "v2"), healthy::get, token::get, () -> "spiffe://acme/ns/shop/sa/catalog");
            registrar.start(Duration.ofMillis(100));
            await(() -> seen.size() >= 1);
            token.set("second-token");
            healthy.set(false);
            await(() -> seen.stream().anyMatch(s -> s.contains("second-token") && s.contains("\"healthy\":false")));
            registrar.close();
            String first = seen.get(0);
            assertTrue(first.startsWith("POST /api/v1/workloads auth=Bearer first-token type=application/json {\"service\":\"shop/catalog\","
                    + "\"instance\":\"catalog-1\",\"address\":\"127.0.0.1\",\"port\":8080,\"protocol\":\"http\",\"labels\":{\"version\":\"v2\"},"
                    + "\"healthy\":true,\"identity\":\"spiffe://acme/ns/shop/sa/catalog\"}"), first);
            assertEquals("DELETE /api/v1/workloads/catalog-1 auth=Bearer second-token type=null ", seen.get(seen.size() - 1));
        } finally {
            server.stop(0);
        }
    }

    private static void await(java.util.function.BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "timed out");
            Thread.sleep(20);
        }
    }
}
