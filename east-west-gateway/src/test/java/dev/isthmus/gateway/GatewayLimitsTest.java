package dev.isthmus.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.EventLoops;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The gateway's connection limits, idle timeout and graceful drain, with real sockets. */
class GatewayLimitsTest {

    static final String SNI = "catalog.shop.svc.cluster.local";

    private final EventLoops loops = EventLoops.create("gateway-limits", 1);
    private final SimpleMeterRegistry meters = new SimpleMeterRegistry();

    @AfterEach
    void stop() {
        loops.close();
    }

    private double rejected(Rejection reason) {
        var c = meters.find("isthmus_tcp_connections_rejected").tag("reason", reason.label()).counter();
        return c == null ? 0 : c.count();
    }

    @Test
    void connectionsOverThePerSourceLimitAreClosedAtOnce() throws Exception {
        var limits = new SniPassthrough.Limits(100, 2, Duration.ofHours(1), Duration.ofSeconds(1));
        try (var gw = SniPassthrough.start(loops, new InetSocketAddress("127.0.0.1", 0), () -> SniRoutes.parse(""), Duration.ofSeconds(5), meters, limits);
             var a = new Socket("127.0.0.1", gw.address().getPort()); var b = new Socket("127.0.0.1", gw.address().getPort());
             var c = new Socket("127.0.0.1", gw.address().getPort())) {
            c.setSoTimeout(3000);
            assertEquals(-1, c.getInputStream().read(), "the third from the same source is closed");
            assertEquals(1.0, rejected(Rejection.TOO_MANY_FROM_SOURCE));
        }
    }

    @Test
    void aFlowWithoutBytesIsClosedAfterTheIdleTimeout() throws Exception {
        var limits = new SniPassthrough.Limits(100, 100, Duration.ofMillis(300), Duration.ofSeconds(1));
        try (var gw = SniPassthrough.start(loops, new InetSocketAddress("127.0.0.1", 0), () -> SniRoutes.parse(""), Duration.ofSeconds(5), meters, limits);
             var idle = new Socket("127.0.0.1", gw.address().getPort())) {
            idle.setSoTimeout(3000);
            long t0 = System.nanoTime();
            assertEquals(-1, idle.getInputStream().read());
            assertTrue((System.nanoTime() - t0) / 1_000_000 < 2000, "closed at the idle timeout, before the ClientHello timeout");
            assertEquals(1.0, meters.get("isthmus_tcp_connections_closed").tag("reason", "idle_timeout").counter().count());
        }
    }

    @Test
    void shutdownStopsAcceptingAndLetsTheFlowInProgressFinish() throws Exception {
        try (var endpoint = new ServerSocket(0, 10, InetAddress.getLoopbackAddress())) {
            var atEndpoint = new CompletableFuture<Socket>();
            Thread.ofVirtual().start(() -> {
                try {
                    atEndpoint.complete(endpoint.accept());
                } catch (Exception e) {
                    atEndpoint.completeExceptionally(e);
                }
            });
            var limits = new SniPassthrough.Limits(100, 100, Duration.ofHours(1), Duration.ofSeconds(20));
            var routes = SniRoutes.parse(SNI + "=127.0.0.1:" + endpoint.getLocalPort());
            var gw = SniPassthrough.start(loops, new InetSocketAddress("127.0.0.1", 0), () -> routes, Duration.ofSeconds(5), meters, limits);
            int port = gw.address().getPort();
            var client = (SSLSocket) SSLContext.getDefault().getSocketFactory().createSocket("127.0.0.1", port);
            var params = client.getSSLParameters();
            params.setServerNames(java.util.List.of(new SNIHostName(SNI)));
            client.setSSLParameters(params);
            Thread.ofVirtual().start(() -> {
                try {
                    client.startHandshake(); // the endpoint never answers: the flow stays open
                } catch (Exception ignored) {
                    // ended by the endpoint closing
                }
            });
            Socket flow = atEndpoint.get(5, TimeUnit.SECONDS);
            assertEquals(1, gw.activeFlows());

            long t0 = System.nanoTime();
            var closing = CompletableFuture.runAsync(gw::close);
            Thread.sleep(500);
            assertTrue(!closing.isDone(), "close waits for the flow in progress");
            assertThrows(java.io.IOException.class, () -> new Socket("127.0.0.1", port).close(), "no new connections while draining");
            flow.close(); // the flow ends
            closing.get(5, TimeUnit.SECONDS);
            assertTrue((System.nanoTime() - t0) / 1_000_000 < 5000, "close returned when the flow ended, not at the 20 s deadline");
            client.close();
            assertEquals(1.0, meters.get("isthmus_gateway_connections").tag("sni", SNI).counter().count());
            assertTrue(meters.get("isthmus_gateway_bytes").tag("sni", SNI).tag("direction", "to_endpoint").counter().count() > 100,
                    "the ClientHello's bytes are counted for its SNI");
            assertEquals(1, meters.get("isthmus_gateway_flow_duration").tag("sni", SNI).timer().count());
        }
    }
}
