package dev.isthmus.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.cli.local.Component;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.ServerServiceDefinition;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * gRPC (unary and bidi streaming) and WebSocket across regions, with every hop from the registry: a
 * us-east sidecar configured by its controller's xDS server (outbound HTTP listener, cluster for the
 * service pointing at eu-west's gateway with Istio's SNI) → mTLS through eu-west's east-west gateway
 * (its routes from eu-west's controller over xDS) → the eu-west service's sidecar (terminates mTLS,
 * passes the verified caller) → the app, which runs only in eu-west.
 */
@org.junit.jupiter.api.TestMethodOrder(org.junit.jupiter.api.MethodOrderer.OrderAnnotation.class)
class CrossRegionProtocolsIT {

    static final int BASE = 25000;
    /** Ports of the extra processes, above the two regions' blocks (25000-25199). */
    static final int GRPC_APP = 25510;
    static final int WS_APP = 25520;
    static final int CLIENT_SIDECAR = 25530;

    @RegisterExtension
    static final LocalFederationExtension FED = new LocalFederationExtension(BASE, "us-east", "eu-west")
            .withEnvironment("east-west-gateway", Map.of("ISTHMUS_DRAIN_TIMEOUT_SECONDS", "8"));

    static final MethodDescriptor.Marshaller<String> TEXT = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(String value) {
            return new ByteArrayInputStream(value.getBytes(StandardCharsets.UTF_8));
        }

        @Override
        public String parse(InputStream stream) {
            try {
                return new String(stream.readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }
    };
    static final MethodDescriptor<String, String> SAY = MethodDescriptor.<String, String>newBuilder().setType(MethodDescriptor.MethodType.UNARY)
            .setFullMethodName("isthmus.e2e.Echo/Say").setRequestMarshaller(TEXT).setResponseMarshaller(TEXT).build();
    static final MethodDescriptor<String, String> CHAT = MethodDescriptor.<String, String>newBuilder().setType(MethodDescriptor.MethodType.BIDI_STREAMING)
            .setFullMethodName("isthmus.e2e.Echo/Chat").setRequestMarshaller(TEXT).setResponseMarshaller(TEXT).build();
    static final Metadata.Key<String> CALLER = Metadata.Key.of("x-isthmus-peer-identity", Metadata.ASCII_STRING_MARSHALLER);
    static final io.grpc.Context.Key<String> CALLER_CTX = io.grpc.Context.key("caller");

    static Server grpcApp;
    static WebSocketEcho wsApp;
    static final List<Process> sidecars = new ArrayList<>();

    /** The environment of the shop sidecar {@code like} in {@code region}, made into a sidecar for another app. */
    static Map<String, String> sidecarEnv(String region, String like, String service, int appPort, int first) throws Exception {
        Component template = FED.component(region + "/sidecar-" + like);
        var env = new HashMap<>(template.environment());
        env.remove("ISTHMUS_BOOTSTRAP");
        env.remove("ISTHMUS_OUTBOUND"); // the template's outbound port is its own
        env.remove("ISTHMUS_PORTS"); // so are the template's further service ports (the catalogue's gRPC port)
        env.put("ISTHMUS_SERVICE", "shop/" + service);
        env.put("ISTHMUS_APP", "127.0.0.1:" + appPort);
        env.put("ISTHMUS_ADMIN", "127.0.0.1:" + (first + 1));
        env.put("ISTHMUS_INBOUND", "127.0.0.1:" + (first + 2));
        env.put("ISTHMUS_INSTANCE", service + "-" + region + "-1");
        return env;
    }

    static void startSidecar(String name, Map<String, String> env) throws Exception {
        Path dir = Files.createDirectories(FED.topology().regionDir("extra").resolve(name));
        var command = new ArrayList<>(List.of(LocalFederationExtension.javaCommand(), "-Xmx64m", "-XX:+UseSerialGC", "-jar",
                LocalFederationExtension.home().resolve("sidecar-lite/target/sidecar-lite.jar").toString()));
        var pb = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("sidecar.log").toFile()));
        env.put("ISTHMUS_STATE_DIR", dir.toString());
        pb.environment().putAll(env);
        sidecars.add(pb.start());
        Http.await("http://" + env.get("ISTHMUS_ADMIN") + "/ready", Duration.ofSeconds(30), b -> true);
    }

    @BeforeAll
    static void startApps() throws Exception {
        ServerInterceptor callerToContext = new ServerInterceptor() {
            @Override
            public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
                return io.grpc.Contexts.interceptCall(io.grpc.Context.current().withValue(CALLER_CTX, String.valueOf(headers.get(CALLER))), call, headers,
                        next);
            }
        };
        var echo = ServerServiceDefinition.builder("isthmus.e2e.Echo")
                .addMethod(SAY, ServerCalls.asyncUnaryCall((String req, StreamObserver<String> out) -> {
                    out.onNext("eu-west says " + req + " to " + CALLER_CTX.get());
                    out.onCompleted();
                }))
                .addMethod(CHAT, ServerCalls.asyncBidiStreamingCall(out -> new StreamObserver<String>() {
                    @Override
                    public void onNext(String value) {
                        out.onNext("echo " + value);
                    }

                    @Override
                    public void onError(Throwable t) {
                    }

                    @Override
                    public void onCompleted() {
                        out.onCompleted();
                    }
                })).build();
        grpcApp = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", GRPC_APP))
                .addService(ServerInterceptors.intercept(echo, callerToContext)).build().start();
        wsApp = WebSocketEcho.start(WS_APP);

        // eu-west: the two apps' sidecars (strict mTLS inbound, HTTP-aware so the caller's identity reaches the app).
        var grpcEnv = sidecarEnv("eu-west", "product-catalog", "echo-grpc", GRPC_APP, GRPC_APP);
        grpcEnv.put("ISTHMUS_PROTOCOL", "grpc");
        startSidecar("sidecar-echo-grpc", grpcEnv);
        startSidecar("sidecar-echo-ws", sidecarEnv("eu-west", "product-catalog", "echo-ws", WS_APP, WS_APP));
        // us-east: a caller's sidecar with no bootstrap, all its outbound config from us-east's controller.
        var client = sidecarEnv("us-east", "user-login", "echo-client", FED.topology().appPort("us-east", "user-login"), CLIENT_SIDECAR);
        client.put("ISTHMUS_XDS", "127.0.0.1:" + FED.topology().controllerXdsPort("us-east"));
        client.put("ISTHMUS_OUTBOUND", "127.0.0.1:" + (CLIENT_SIDECAR + 3));
        startSidecar("sidecar-echo-client", client);
    }

    @AfterAll
    static void stopApps() throws Exception {
        for (Process p : sidecars) {
            p.destroy();
            p.waitFor(10, TimeUnit.SECONDS);
        }
        if (grpcApp != null) {
            grpcApp.shutdownNow();
        }
        if (wsApp != null) {
            wsApp.close();
        }
    }

    /** A bidi Chat stream: what the caller sends, what it received so far, and its end. */
    record Chat(StreamObserver<String> requests, LinkedBlockingQueue<String> received, CompletableFuture<Void> done) {
        static Chat open(ManagedChannel channel, int deadlineSeconds) {
            var received = new LinkedBlockingQueue<String>();
            var done = new CompletableFuture<Void>();
            ClientCall<String, String> call = channel.newCall(CHAT, CallOptions.DEFAULT.withDeadlineAfter(deadlineSeconds, TimeUnit.SECONDS));
            var requests = ClientCalls.asyncBidiStreamingCall(call, new StreamObserver<String>() {
                @Override
                public void onNext(String value) {
                    received.add(value);
                }

                @Override
                public void onError(Throwable t) {
                    done.completeExceptionally(t);
                }

                @Override
                public void onCompleted() {
                    done.complete(null);
                }
            });
            return new Chat(requests, received, done);
        }
    }

    private static ManagedChannel channel() {
        return NettyChannelBuilder.forAddress("127.0.0.1", CLIENT_SIDECAR + 3).usePlaintext().overrideAuthority("echo-grpc.shop").build();
    }

    @Test
    @org.junit.jupiter.api.Order(1)
    void grpcUnaryAndBidiStreamingCrossRegionsThroughTheGatewayWithTheCallersIdentity() throws Exception {
        var channel = channel();
        try {
            String answer = null;
            var seen = new java.util.LinkedHashSet<String>();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (answer == null) {
                try {
                    answer = ClientCalls.blockingUnaryCall(channel, SAY, CallOptions.DEFAULT.withDeadlineAfter(3, TimeUnit.SECONDS), "hello");
                } catch (io.grpc.StatusRuntimeException e) {
                    seen.add(e.getStatus().getCode() + " " + e.getTrailers());
                    if (System.nanoTime() > deadline) {
                        throw new AssertionError("no gRPC answer across regions within 30 s; seen: " + seen
                                + "\nclient sidecar: " + Http.get("http://127.0.0.1:" + (CLIENT_SIDECAR + 1) + "/config_dump").body()
                                + "\nus-east services: " + Http.get("http://127.0.0.1:" + FED.topology().controllerPort("us-east") + "/api/v1/services/shop/echo-grpc").body()
                                + "\nus-east xDS: " + Http.get("http://127.0.0.1:" + FED.topology().controllerPort("us-east") + "/api/v1/xds/status").body()
                                + "\neu-west gateway: " + Http.get("http://127.0.0.1:" + FED.topology().gatewayAdminPort("eu-west") + "/config_dump").body(), e);
                    }
                    Thread.sleep(250);
                }
            }
            assertEquals("eu-west says hello to spiffe://us-east.acme.isthmus/ns/shop/sa/echo-client", answer,
                    "served in eu-west, which saw the us-east caller's verified identity");
            // The callee registered its SPIFFE ID: us-east's sidecars accept only it at the end of the tunnel.
            Http.await("http://127.0.0.1:" + FED.topology().controllerPort("us-east") + "/api/v1/services/shop/echo-grpc", Duration.ofSeconds(10),
                    b -> b.contains("\"identity\":\"spiffe://eu-west.acme.isthmus/ns/shop/sa/echo-grpc\""));

            var chat = Chat.open(channel, 20);
            var received = chat.received();
            var done = chat.done();
            var requests = chat.requests();
            for (int i = 1; i <= 3; i++) {
                requests.onNext("m" + i);
                assertEquals("echo m" + i, received.poll(10, TimeUnit.SECONDS), "each message answered while the stream stays open");
            }
            requests.onCompleted();
            done.get(10, TimeUnit.SECONDS);
        } finally {
            channel.shutdownNow();
        }
        String metrics = Http.get("http://127.0.0.1:" + FED.topology().gatewayAdminPort("eu-west") + "/metrics").body();
        assertTrue(metrics.contains("isthmus_gateway_connections_total{sni=\"outbound_.80_._.echo-grpc.shop.svc.cluster.local\"}"), metrics);
    }

    @Test
    @org.junit.jupiter.api.Order(2)
    void aWebSocketCrossesRegionsThroughTheGateway() throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            try (var socket = new Socket("127.0.0.1", CLIENT_SIDECAR + 3)) {
                socket.setSoTimeout(5000);
                var ws = WebSocketEcho.Client.handshake(socket, "echo-ws.shop", "/chat");
                if (ws.status() == 101) {
                    for (String m : List.of("one", "two", "three")) {
                        ws.sendText(m);
                        assertEquals("echo " + m + " from " + "spiffe://us-east.acme.isthmus/ns/shop/sa/echo-client", ws.readText());
                    }
                    return;
                }
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("no WebSocket upgrade across regions within 30 s; last status " + ws.status());
                }
            }
            Thread.sleep(250);
        }
    }

    @Test
    @org.junit.jupiter.api.Order(3)
    void aStreamInFlightWhenTheGatewayShutsDownFinishes() throws Exception {
        var channel = channel();
        try {
            var chat = Chat.open(channel, 30);
            var received = chat.received();
            var done = chat.done();
            var requests = chat.requests();
            requests.onNext("before");
            assertEquals("echo before", received.poll(10, TimeUnit.SECONDS));

            // SIGTERM to eu-west's gateway: it stops accepting and lets flows in progress finish (drain deadline 8 s here).
            var gateway = FED.process("eu-west/east-west-gateway").orElseThrow();
            gateway.destroy();
            int port = FED.topology().gatewayPort("eu-west");
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            boolean refused = false;
            while (!refused && System.nanoTime() < until) {
                try (var s = new Socket("127.0.0.1", port)) {
                    Thread.sleep(50);
                } catch (java.net.ConnectException e) {
                    refused = true;
                }
            }
            assertTrue(refused, "a draining gateway accepts no new connection");
            assertTrue(gateway.isAlive(), "the gateway waits for the flow in progress");
            for (String m : List.of("during-1", "during-2")) {
                requests.onNext(m);
                assertEquals("echo " + m, received.poll(5, TimeUnit.SECONDS), "the stream in flight keeps flowing while the gateway drains");
            }
            requests.onCompleted();
            done.get(5, TimeUnit.SECONDS);
            assertTrue(gateway.onExit().get(20, TimeUnit.SECONDS) != null, "the gateway exits once drained");
        } finally {
            channel.shutdownNow();
            FED.restart("eu-west/east-west-gateway");
        }
    }
}
