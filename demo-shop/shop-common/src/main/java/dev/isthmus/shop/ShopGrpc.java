package dev.isthmus.shop;

import io.grpc.CallOptions;
import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * The shop's gRPC: unary methods whose messages are JSON documents (gRPC carries any codec; the
 * shop keeps to JSON so that it needs no generated code), served over HTTP/2 cleartext on the
 * service's gRPC port and called through the caller's sidecar like any gRPC client: the channel
 * goes to the sidecar's outbound listener with {@code :authority <name>.<namespace>:<service port>},
 * and the mesh routes it by that name (mTLS between the sidecars, across regions through the
 * east-west gateways).
 */
public final class ShopGrpc {

    /** product-catalog's gRPC service port (its HTTP API is on 80): the same in every region. */
    public static final int CATALOG_SERVICE_PORT = 9090;
    /** Lists the catalogue; the request is {@code {}}. */
    public static final String LIST_PRODUCTS = "isthmus.shop.v1.ProductCatalog/ListProducts";

    private static final Metadata.Key<String> CALLER = Metadata.Key.of("x-isthmus-peer-identity", Metadata.ASCII_STRING_MARSHALLER);
    static final Context.Key<String> CALLER_IDENTITY = Context.key("caller");

    private static final MethodDescriptor.Marshaller<String> JSON = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(String value) {
            return new ByteArrayInputStream(value.getBytes(StandardCharsets.UTF_8));
        }

        @Override
        public String parse(InputStream stream) {
            try {
                return new String(stream.readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    };

    private final Map<String, ManagedChannel> channels = new ConcurrentHashMap<>();

    static MethodDescriptor<String, String> unary(String fullMethod) {
        return MethodDescriptor.<String, String>newBuilder().setType(MethodDescriptor.MethodType.UNARY).setFullMethodName(fullMethod)
                .setRequestMarshaller(JSON).setResponseMarshaller(JSON).build();
    }

    /**
     * Starts a gRPC server at {@code address} with one unary method per entry; a handler gets the
     * request JSON and the caller's identity (what the sidecar passed, or null) and returns the answer.
     */
    static Server serve(InetSocketAddress address, Map<String, java.util.function.BiFunction<String, String, String>> methods) throws IOException {
        var byService = new java.util.TreeMap<String, ServerServiceDefinition.Builder>();
        methods.forEach((name, handler) -> {
            var method = unary(name);
            byService.computeIfAbsent(method.getServiceName(), ServerServiceDefinition::builder).addMethod(method,
                    ServerCalls.asyncUnaryCall((request, observer) -> {
                        try {
                            observer.onNext(handler.apply(request, CALLER_IDENTITY.get()));
                            observer.onCompleted();
                        } catch (RuntimeException e) {
                            observer.onError(Status.INTERNAL.withDescription(String.valueOf(e.getMessage())).asRuntimeException());
                        }
                    }));
        });
        var builder = NettyServerBuilder.forAddress(address).executor(Executors.newVirtualThreadPerTaskExecutor())
                .intercept(new ServerInterceptor() {
                    @Override
                    public <Q, R> io.grpc.ServerCall.Listener<Q> interceptCall(io.grpc.ServerCall<Q, R> call, Metadata headers,
                            ServerCallHandler<Q, R> next) {
                        return Contexts.interceptCall(Context.current().withValue(CALLER_IDENTITY, headers.get(CALLER)), call, headers, next);
                    }
                });
        byService.values().forEach(b -> builder.addService(b.build()));
        return builder.build().start();
    }

    /**
     * Calls {@code fullMethod} of {@code authority} ({@code <name>.<namespace>:<port>}) through the
     * sidecar's outbound listener {@code proxy} (host:port), with a 5 s deadline.
     *
     * @return the answer JSON
     * @throws StatusRuntimeException with the call's status when it fails
     */
    String call(String proxy, String authority, String fullMethod, String request) {
        var channel = channels.computeIfAbsent(proxy + "|" + authority, k -> {
            int colon = proxy.lastIndexOf(':');
            return NettyChannelBuilder.forAddress(proxy.substring(0, colon), Integer.parseInt(proxy.substring(colon + 1)))
                    .overrideAuthority(authority).usePlaintext().build();
        });
        return ClientCalls.blockingUnaryCall(channel, unary(fullMethod), CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS), request);
    }

    void close() {
        channels.values().forEach(ManagedChannel::shutdownNow);
    }

    /** The HTTP status a failed call becomes in the caller's answer. */
    static int httpStatus(Status.Code code) {
        return switch (code) {
            case UNAVAILABLE -> 503;
            case DEADLINE_EXCEEDED -> 504;
            default -> 502;
        };
    }
}
