package dev.isthmus.controller.xds;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.controller.policy.PolicyStore;
import io.grpc.CallOptions;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Proxyless gRPC: a plain grpc-java client with the target {@code xds:///ledger-grpc.shop} and a bootstrap
 * pointing at the controller's xDS server (grpc-xds, no sidecar) resolves the service's endpoints from
 * the registry and splits its calls as the TrafficPolicy says.
 */
@QuarkusTest
class ProxylessGrpcTest {

    static final String WORKLOAD = "test-workload-credential-0123456789";

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
    static final MethodDescriptor<String, String> WHO = MethodDescriptor.<String, String>newBuilder().setType(MethodDescriptor.MethodType.UNARY)
            .setFullMethodName("isthmus.test.Ledger/Who").setRequestMarshaller(TEXT).setResponseMarshaller(TEXT).build();

    @Inject
    XdsServer xds;

    @Inject
    PolicyStore policy;

    static Server server(String version) throws IOException {
        var service = ServerServiceDefinition.builder("isthmus.test.Ledger").addMethod(WHO, ServerCalls.asyncUnaryCall((String req, io.grpc.stub.StreamObserver<String> out) -> {
            out.onNext(version);
            out.onCompleted();
        })).build();
        return NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0)).addService(service).build().start();
    }

    static void register(String instance, int port, String version) {
        given().auth().oauth2(WORKLOAD).contentType("application/json").body("""
                {"service":"shop/ledger-grpc","instance":"%s","address":"127.0.0.1","port":%d,"protocol":"grpc","labels":{"version":"%s"}}
                """.formatted(instance, port, version)).post("/api/v1/workloads").then().statusCode(201);
    }

    @Test
    void anXdsTargetResolvesThroughTheControllerAndHonoursTheWeightedSplit() throws Exception {
        Server v1 = server("v1");
        Server v2 = server("v2");
        ManagedChannel channel = null;
        try {
            register("ledger-grpc-v1", v1.getPort(), "v1");
            register("ledger-grpc-v2", v2.getPort(), "v2");
            var result = policy.offer(new PolicyStore.BundleMessage("proxyless-test-" + System.nanoTime(), System.currentTimeMillis() / 1000, "test",
                    Map.of("ledger.yaml", """
                            apiVersion: isthmus.dev/v1alpha1
                            kind: TrafficPolicy
                            metadata: { name: ledger-grpc, namespace: shop }
                            spec:
                              service: ledger-grpc
                              routes:
                              - destinations: [ { subset: v1, weight: 75 }, { subset: v2, weight: 25 } ]
                            """)), "test", false);
            assertTrue(result.ok(), result.problems().toString());
            System.setProperty("io.grpc.xds.bootstrapConfig", """
                    {"xds_servers": [{"server_uri": "127.0.0.1:%d", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
                     "node": {"id": "proxyless-client-1", "cluster": "shop/client", "locality": {"region": "test-east"},
                              "metadata": {"ISTHMUS_PROXY_TYPE": "proxyless"}}}
                    """.formatted(xds.address().getPort()));
            channel = Grpc.newChannelBuilder("xds:///ledger-grpc.shop", InsecureChannelCredentials.create()).build();
            var answers = new ArrayList<String>();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (answers.size() < 800) {
                try {
                    answers.add(ClientCalls.blockingUnaryCall(channel, WHO, CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS), "who"));
                } catch (io.grpc.StatusRuntimeException e) {
                    if (System.nanoTime() > deadline) {
                        throw new AssertionError("no answer over xds:///ledger-grpc.shop within 20 s: " + e.getStatus() + "; xDS: "
                                + given().get("/api/v1/xds/status").asString(), e);
                    }
                    Thread.sleep(100);
                }
            }
            long v2share = answers.stream().filter("v2"::equals).count();
            assertEquals(800, answers.stream().filter(a -> a.equals("v1") || a.equals("v2")).count());
            assertTrue(v2share >= 140 && v2share <= 260, "25% of 800 calls to v2 (± 7.5%), got " + v2share);
        } finally {
            if (channel != null) {
                channel.shutdownNow();
            }
            v1.shutdownNow();
            v2.shutdownNow();
            for (String i : List.of("ledger-grpc-v1", "ledger-grpc-v2")) {
                given().auth().oauth2(WORKLOAD).delete("/api/v1/workloads/" + i);
            }
        }
    }
}
