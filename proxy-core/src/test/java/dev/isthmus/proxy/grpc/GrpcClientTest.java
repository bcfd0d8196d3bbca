package dev.isthmus.proxy.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.api.trust.v1.IssueRequest;
import dev.isthmus.api.trust.v1.IssueResponse;
import dev.isthmus.api.trust.v1.RootCertificates;
import dev.isthmus.api.trust.v1.TrustBundle;
import dev.isthmus.api.trust.v1.WatchBundleRequest;
import dev.isthmus.api.trust.v1.WorkloadCertificatesGrpc;
import dev.isthmus.proxy.identity.SvidClient;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The proxies' own gRPC client against grpc-java's server (the server the trust bridge and the
 * controller's xDS server run on), with mesh-api's full messages on the server's side and the
 * proxies' lite copies on the client's. The ADS stream (bidirectional) is tested in
 * {@code AdsClientTest}, against Envoy's Java control plane.
 */
class GrpcClientTest {

    private Server server;
    private final List<String> events = new CopyOnWriteArrayList<>();

    /** The trust bridge's service, answering from the request: "fail:CODE:message" fails, "hang" never answers. */
    private final class Bridge extends WorkloadCertificatesGrpc.WorkloadCertificatesImplBase {
        @Override
        public void issue(IssueRequest request, StreamObserver<IssueResponse> answer) {
            String csr = request.getCsrPem();
            if (csr.startsWith("fail:")) {
                String[] parts = csr.split(":", 3);
                answer.onError(Status.fromCodeValue(Integer.parseInt(parts[1])).withDescription(parts[2]).asRuntimeException());
            } else if (csr.equals("hang")) {
                ((ServerCallStreamObserver<IssueResponse>) answer).setOnCancelHandler(() -> events.add("cancelled"));
            } else {
                answer.onNext(IssueResponse.newBuilder().setCertificatePem("cert for " + request.getSpiffeId()).addChainPem(csr.repeat(request.getTtlSeconds() > 0
                        ? (int) request.getTtlSeconds() : 1)).build());
                answer.onCompleted();
            }
        }

        @Override
        public void watchBundle(WatchBundleRequest request, StreamObserver<TrustBundle> bundles) {
            for (int i = 1; i <= 3; i++) {
                // the third is 3 MiB: many DATA frames, more than the stream's first window
                String pem = i == 3 ? "r".repeat(3 << 20) : "root-" + i;
                bundles.onNext(TrustBundle.newBuilder().setTrustDomain(request.getCredential()).setSequence(i)
                        .putRoots("us-east.acme.isthmus", RootCertificates.newBuilder().addCertificatePem(pem).build()).build());
            }
            bundles.onCompleted();
        }
    }

    private int start(int port) throws Exception {
        server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", port)).addService(new Bridge()).build().start();
        return server.getPort();
    }

    @AfterEach
    void stop() throws Exception {
        if (server != null) {
            server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    private static dev.isthmus.lite.trust.v1.IssueRequest request(String csr, long repeat) {
        return dev.isthmus.lite.trust.v1.IssueRequest.newBuilder().setCsrPem(csr).setSpiffeId("spiffe://us-east.acme.isthmus/ns/shop/sa/orders")
                .setTtlSeconds(repeat).build();
    }

    @Test
    void aUnaryCallIsAnswered() throws Exception {
        int port = start(0);
        try (var client = new GrpcClient("127.0.0.1:" + port)) {
            var answer = client.unary(SvidClient.ISSUE, request("csr", 1), dev.isthmus.lite.trust.v1.IssueResponse.parser(), Duration.ofSeconds(5));
            assertEquals("cert for spiffe://us-east.acme.isthmus/ns/shop/sa/orders", answer.getCertificatePem());
            // a 2 MiB answer, on the same connection
            var big = client.unary(SvidClient.ISSUE, request("ab", 1 << 20), dev.isthmus.lite.trust.v1.IssueResponse.parser(), Duration.ofSeconds(5));
            assertEquals(2 << 20, big.getChainPem(0).length());
        }
    }

    @Test
    void itsConnectionHasTcpKeepaliveOn() throws Exception {
        int port = start(0);
        try (var client = new GrpcClient("127.0.0.1:" + port)) {
            client.unary(SvidClient.ISSUE, request("csr", 1), dev.isthmus.lite.trust.v1.IssueResponse.parser(), Duration.ofSeconds(5));
            // the kernel's view of the idle connection (/proc/net/tcp and tcp6, "tr" 2: the keepalive timer runs,
            // due in at most 30 s): a server gone without a word is found out in about a minute
            String remote = String.format(":%04X", port);
            var lines = new java.util.ArrayList<>(java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/net/tcp")));
            lines.addAll(java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/net/tcp6"))); // epoll's sockets are IPv6 where it can
            var line = lines.stream()
                    .map(String::trim).map(l -> l.split("\\s+")).filter(f -> f.length > 5 && f[2].endsWith(remote) && f[3].equals("01")).findFirst()
                    .orElseThrow(() -> new AssertionError("no established connection to port " + port));
            String[] timer = line[5].split(":");
            assertEquals("02", timer[0], "the keepalive timer: " + String.join(" ", line));
            long dueJiffies = Long.parseLong(timer[1], 16);
            assertTrue(dueJiffies > 0 && dueJiffies <= 30L * 1000, "due in " + dueJiffies + " jiffies");
        }
    }

    @Test
    void aRefusalKeepsItsCodeAndItsMessage() throws Exception {
        int port = start(0);
        try (var client = new GrpcClient("127.0.0.1:" + port)) {
            var e = assertThrows(GrpcException.class, () -> client.unary(SvidClient.ISSUE, request("fail:16:bad credential: 50% off, über", 0),
                    dev.isthmus.lite.trust.v1.IssueResponse.parser(), Duration.ofSeconds(5)));
            assertEquals(GrpcStatus.UNAUTHENTICATED, e.status().code());
            assertEquals("bad credential: 50% off, über", e.status().message());
            assertEquals("UNAUTHENTICATED: bad credential: 50% off, über", e.getMessage());
            var unknownMethod = assertThrows(GrpcException.class, () -> client.unary("isthmus.trust.v1.WorkloadCertificates/Nope", request("csr", 0),
                    dev.isthmus.lite.trust.v1.IssueResponse.parser(), Duration.ofSeconds(5)));
            assertEquals(GrpcStatus.UNIMPLEMENTED, unknownMethod.status().code(), unknownMethod.getMessage());
        }
    }

    @Test
    void aServerStreamDeliversEveryMessageThenItsStatus() throws Exception {
        int port = start(0);
        var received = new LinkedBlockingQueue<Object>();
        try (var client = new GrpcClient("127.0.0.1:" + port)) {
            GrpcClient.Call<dev.isthmus.lite.trust.v1.WatchBundleRequest> call = client.call(SvidClient.WATCH_BUNDLE,
                    dev.isthmus.lite.trust.v1.TrustBundle.parser(), null, new GrpcClient.Listener<dev.isthmus.lite.trust.v1.TrustBundle>() {
                        @Override
                        public void onMessage(dev.isthmus.lite.trust.v1.TrustBundle message) {
                            received.add(message);
                        }

                        @Override
                        public void onClose(GrpcStatus status) {
                            received.add(status);
                        }
                    });
            call.send(dev.isthmus.lite.trust.v1.WatchBundleRequest.newBuilder().setCredential("us-east.acme.isthmus").build());
            call.halfClose();
            for (int i = 1; i <= 3; i++) {
                var bundle = (dev.isthmus.lite.trust.v1.TrustBundle) received.poll(10, TimeUnit.SECONDS);
                assertEquals(i, bundle.getSequence());
                assertEquals("us-east.acme.isthmus", bundle.getTrustDomain());
                assertEquals(i == 3 ? 3 << 20 : 6, bundle.getRootsOrThrow("us-east.acme.isthmus").getCertificatePem(0).length());
            }
            assertEquals(new GrpcStatus(GrpcStatus.OK, ""), received.poll(10, TimeUnit.SECONDS));
        }
    }

    @Test
    void aDeadlineEndsTheCallAndCancelsItAtTheServer() throws Exception {
        int port = start(0);
        try (var client = new GrpcClient("127.0.0.1:" + port)) {
            long t0 = System.nanoTime();
            var e = assertThrows(GrpcException.class, () -> client.unary(SvidClient.ISSUE, request("hang", 0),
                    dev.isthmus.lite.trust.v1.IssueResponse.parser(), Duration.ofMillis(300)));
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertEquals(GrpcStatus.DEADLINE_EXCEEDED, e.status().code(), e.getMessage());
            assertTrue(ms >= 250 && ms < 4000, ms + " ms");
            for (int i = 0; i < 100 && !events.contains("cancelled"); i++) {
                Thread.sleep(50);
            }
            assertEquals(List.of("cancelled"), events, "the server saw the call end (grpc-timeout, or the reset stream)");
        }
    }

    @Test
    void noServerIsUnavailableAndANewServerIsCalledOnANewConnection() throws Exception {
        int port;
        try (var s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        try (var client = new GrpcClient("127.0.0.1:" + port)) {
            var e = assertThrows(GrpcException.class, () -> client.unary(SvidClient.ISSUE, request("csr", 1),
                    dev.isthmus.lite.trust.v1.IssueResponse.parser(), Duration.ofSeconds(5)));
            assertEquals(GrpcStatus.UNAVAILABLE, e.status().code());
            assertTrue(e.getMessage().contains("cannot connect to 127.0.0.1:" + port), e.getMessage());

            start(port);
            assertEquals("csr", client.unary(SvidClient.ISSUE, request("csr", 1), dev.isthmus.lite.trust.v1.IssueResponse.parser(),
                    Duration.ofSeconds(5)).getChainPem(0));

            // a stream open when the server goes away ends UNAVAILABLE; the next call reaches the next server
            var closed = new CountDownLatch(1);
            var status = new java.util.concurrent.atomic.AtomicReference<GrpcStatus>();
            var hanging = client.<dev.isthmus.lite.trust.v1.IssueRequest, dev.isthmus.lite.trust.v1.IssueResponse>call(SvidClient.ISSUE,
                    dev.isthmus.lite.trust.v1.IssueResponse.parser(), null, new GrpcClient.Listener<>() {
                        @Override
                        public void onMessage(dev.isthmus.lite.trust.v1.IssueResponse message) {
                        }

                        @Override
                        public void onClose(GrpcStatus s) {
                            status.set(s);
                            closed.countDown();
                        }
                    });
            hanging.send(request("hang", 0));
            hanging.halfClose();
            Thread.sleep(300); // the call reaches the server
            server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            assertTrue(closed.await(10, TimeUnit.SECONDS));
            assertTrue(status.get().code() == GrpcStatus.UNAVAILABLE || status.get().code() == GrpcStatus.CANCELLED, status.get().toString());
            start(port);
            assertEquals("again", client.unary(SvidClient.ISSUE, request("again", 1), dev.isthmus.lite.trust.v1.IssueResponse.parser(),
                    Duration.ofSeconds(5)).getChainPem(0));
        }
    }
}
