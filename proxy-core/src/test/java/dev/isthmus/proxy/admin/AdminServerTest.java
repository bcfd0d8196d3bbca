package dev.isthmus.proxy.admin;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.EventLoops;
import io.micrometer.core.instrument.Counter;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class AdminServerTest {

    private final EventLoops loops = EventLoops.create("test", 1);
    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final AtomicBoolean ready = new AtomicBoolean(false);
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private AdminServer admin;

    @BeforeEach
    void start() throws Exception {
        admin = AdminServer.start(loops, new InetSocketAddress("127.0.0.1", 0), registry, ready::get, () -> "{\"listeners\":[]}");
    }

    @AfterEach
    void stop() {
        admin.close();
        loops.close();
    }

    private HttpResponse<String> get(String path) throws Exception {
        var uri = URI.create("http://127.0.0.1:" + admin.address().getPort() + path);
        return http.send(HttpRequest.newBuilder(uri).build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void readyAnswers503UntilTheProxyIsReady() throws Exception {
        assertEquals(503, get("/ready").statusCode());
        ready.set(true);
        assertEquals(200, get("/ready").statusCode());
    }

    @Test
    void metricsServesPrometheusTextWithRegisteredMeters() throws Exception {
        Counter.builder("isthmus_test_events").register(registry).increment(3);
        var res = get("/metrics");
        assertEquals(200, res.statusCode());
        assertTrue(res.body().contains("isthmus_test_events_total 3.0"), res.body());
    }

    @Test
    void configDumpAndUnknownPaths() throws Exception {
        assertEquals("{\"listeners\":[]}", get("/config_dump").body());
        var res = get("/nope");
        assertEquals(404, res.statusCode());
        assertTrue(res.body().contains("/nope"));
    }

    @Test
    void aFailingConfigDumpIsA500ThatSaysWhy() throws Exception {
        try (var broken = AdminServer.start(loops, new InetSocketAddress("127.0.0.1", 0), registry, ready::get, () -> {
            throw new IllegalStateException("no cluster for listener x");
        })) {
            var res = http.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://127.0.0.1:" + broken.address().getPort() + "/config_dump"))
                    .build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(500, res.statusCode());
            assertTrue(res.body().contains("no cluster for listener x"), res.body());
        }
    }
}
