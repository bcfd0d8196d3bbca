package dev.isthmus.proxy.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.EventLoops;
import dev.isthmus.proxy.Loopback;
import dev.isthmus.proxy.ProxyMetrics;
import dev.isthmus.proxy.tcp.RelayManager;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.handler.codec.http2.DefaultHttp2DataFrame;
import io.netty.handler.codec.http2.DefaultHttp2Headers;
import io.netty.handler.codec.http2.DefaultHttp2HeadersFrame;
import io.netty.handler.codec.http2.DefaultHttp2ResetFrame;
import io.netty.handler.codec.http2.Http2Error;
import io.netty.handler.codec.http2.Http2FrameCodec;
import io.netty.handler.codec.http2.Http2FrameCodecBuilder;
import io.netty.handler.codec.http2.Http2FrameStream;
import io.netty.handler.codec.http2.Http2HeadersFrame;
import io.netty.util.ReferenceCountUtil;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BiConsumer;
import java.util.function.IntFunction;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Upstream streams that end out of the ordinary. Streams an HTTP/2 upstream did not process (RFC
 * 9113: refused with RST_STREAM REFUSED_STREAM, or above the last stream id of its GOAWAY) are sent
 * again, whatever the route's retry policy, and a connection whose server sent GOAWAY takes no new
 * stream; an answer that ends before the caller's request does ends the caller's stream. Real Netty
 * HTTP/2 servers behind the relay, curl, nghttp and a Netty HTTP/2 client over h2c in front.
 */
class RefusedStreamsTest {

    /** One event loop: the proxy's upstream connections are per loop, so every request here has the same ones to choose from. */
    private final EventLoops loops = EventLoops.create("refused-test", 1);
    private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
    private final List<AutoCloseable> others = new ArrayList<>();
    private RelayManager manager;

    @AfterEach
    void stop() throws Exception {
        for (var o : others) {
            o.close();
        }
        if (manager != null) {
            manager.close();
        }
        loops.close();
    }

    /**
     * A Netty HTTP/2 server: {@code perConnection} gives, for the n-th connection (from 1), what to do
     * with each request's headers (the frame codec's context, then the headers), as soon as they come.
     * Its port.
     */
    int server(IntFunction<BiConsumer<ChannelHandlerContext, Http2HeadersFrame>> perConnection) throws Exception {
        return server(perConnection, false);
    }

    /**
     * As {@link #server(IntFunction)}; with {@code atRequestEnd}, a request's headers are handed over
     * once the whole request has come (its END_STREAM), as a server that reads the body before it
     * answers does. A server that answers at the headers answers a POST before its body: the relay
     * then ends the caller's stream early (RFC 9113 section 8.1), which is another test's subject.
     */
    int server(IntFunction<BiConsumer<ChannelHandlerContext, Http2HeadersFrame>> perConnection, boolean atRequestEnd) throws Exception {
        var connections = new AtomicInteger();
        Channel server = new ServerBootstrap().group(loops.workers()).channel(loops.serverChannelType())
                .childHandler(new ChannelInitializer<Channel>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        var onRequest = perConnection.apply(connections.incrementAndGet());
                        var bodies = new java.util.HashMap<Http2FrameStream, Http2HeadersFrame>();
                        ch.pipeline().addLast(Http2FrameCodecBuilder.forServer().build(), new ChannelInboundHandlerAdapter() {
                            @Override
                            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                                if (msg instanceof Http2HeadersFrame h && h.headers().method() != null) {
                                    if (atRequestEnd && !h.isEndStream()) {
                                        bodies.put(h.stream(), h);
                                    } else {
                                        onRequest.accept(ctx, h);
                                    }
                                } else if (msg instanceof io.netty.handler.codec.http2.Http2DataFrame d && d.isEndStream()) {
                                    var ended = bodies.remove(d.stream());
                                    if (ended != null) {
                                        onRequest.accept(ctx, ended);
                                    }
                                }
                                ReferenceCountUtil.release(msg);
                            }
                        });
                    }
                }).bind("127.0.0.1", 0).sync().channel();
        others.add(() -> server.close().sync());
        return ((InetSocketAddress) server.localAddress()).getPort();
    }

    static void answer(ChannelHandlerContext ctx, Http2FrameStream stream, String body) {
        ctx.write(new DefaultHttp2HeadersFrame(new DefaultHttp2Headers().status("200"), false).stream(stream));
        ctx.writeAndFlush(new DefaultHttp2DataFrame(Unpooled.copiedBuffer(body, StandardCharsets.UTF_8), true).stream(stream));
    }

    /** A listener (route without a retry policy) to an HTTP/2 cluster of one endpoint; its port. */
    int proxyTo(int endpoint) throws Exception {
        int port = Loopback.freePort();
        String yaml = "static_resources:\n  listeners:\n" + GrpcThroughProxyTest.listener("plain", port, "") + """
                  clusters:
                  - name: plain
                    type: STATIC
                    connect_timeout: 1s
                %s    load_assignment:
                      cluster_name: plain
                      endpoints:
                      - lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } } } ]
                """.formatted(GrpcThroughProxyTest.H2_CLUSTER_OPTIONS, endpoint);
        manager = new RelayManager(loops, meters, null);
        manager.apply(GrpcThroughProxyTest.config(yaml));
        return port;
    }

    /** curl over h2c (prior knowledge), the given arguments then the URLs: its output (headers and bodies) and exit code. */
    static String curl(List<String> args) throws Exception {
        var command = new ArrayList<>(List.of("curl", "-s", "--http2-prior-knowledge", "-D", "-"));
        command.addAll(args);
        var p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.ISO_8859_1);
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
        return out + "\nexit=" + p.exitValue();
    }

    double resent() {
        var c = meters.find(ProxyMetrics.REFUSED_STREAMS_RESENT).tag("listener", "plain").counter();
        return c == null ? 0 : c.count();
    }

    /**
     * An upstream that refuses every other stream (as a server does when a burst finds it at its
     * limit of concurrent streams): every request is answered, GET and POST alike, though the route
     * retries nothing. One that refuses every stream: the caller gets the reset, after the stream was
     * sent {@link Http2Relay#MAX_REFUSED_RESENDS} more times.
     */
    @Test
    void aRefusedStreamIsSentAgainThoughTheRouteRetriesNothing() throws Exception {
        var requests = new AtomicInteger();
        var refuseAll = new java.util.concurrent.atomic.AtomicBoolean();
        int port = proxyTo(server(n -> (ctx, h) -> {
            if (requests.incrementAndGet() % 2 == 1 || refuseAll.get()) {
                ctx.writeAndFlush(new DefaultHttp2ResetFrame(Http2Error.REFUSED_STREAM).stream(h.stream()));
            } else {
                answer(ctx, h.stream(), "answered " + h.headers().method());
            }
        }, true));
        String url = "http://127.0.0.1:" + port + "/";
        for (int i = 0; i < 4; i++) {
            String out = curl(List.of(url));
            assertTrue(out.startsWith("HTTP/2 200") && out.contains("answered GET") && out.endsWith("exit=0"), out);
        }
        String post = curl(List.of("--data-binary", "order", url));
        assertTrue(post.startsWith("HTTP/2 200") && post.contains("answered POST"), post);
        assertEquals(10, requests.get(), "each request refused once, then answered");
        assertEquals(5.0, resent());

        refuseAll.set(true);
        requests.set(0);
        String refused = curl(List.of(url));
        assertNotEquals("exit=0", refused.substring(refused.lastIndexOf('\n') + 1), "the caller's stream is reset: " + refused);
        // curl sends a refused stream again itself, a few times: each of its streams reached the server 1 + MAX times
        assertTrue(requests.get() > 0 && requests.get() % (1 + Http2Relay.MAX_REFUSED_RESENDS) == 0, "sent again a bounded number of times: " + requests);
    }

    /**
     * The upstream's first connection sends GOAWAY naming the first of two streams as the last it
     * processes, then answers that one: the second stream, closed by the GOAWAY, is sent again on a
     * new connection, and later requests use that one, not the connection going away.
     */
    @Test
    void aStreamPastTheServersGoAwayIsSentAgainOnANewConnection() throws Exception {
        int port = proxyTo(server(n -> {
            var first = new java.util.concurrent.atomic.AtomicReference<Http2FrameStream>();
            return (ctx, h) -> {
                if (n > 1) {
                    answer(ctx, h.stream(), "connection " + n);
                } else if (first.compareAndSet(null, h.stream())) {
                    return; // answered once the second stream has come
                } else {
                    var codec = ctx.pipeline().get(Http2FrameCodec.class);
                    codec.goAway(ctx.pipeline().context(codec), first.get().id(), Http2Error.NO_ERROR.code(), Unpooled.EMPTY_BUFFER, ctx.newPromise());
                    answer(ctx, first.get(), "connection 1");
                }
            };
        }));
        String url = "http://127.0.0.1:" + port + "/";
        // nghttp: one connection to the proxy, two streams on it at once, so both go on the proxy's one upstream connection
        var p = new ProcessBuilder("nghttp", "-m", "2", url).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.ISO_8859_1);
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
        assertTrue(out.contains("connection 1") && out.contains("connection 2") && p.exitValue() == 0, out);
        assertEquals(1.0, resent());
        String next = curl(List.of(url));
        assertTrue(next.contains("connection 2"), "the connection going away takes no new stream: " + next);
    }

    /**
     * The upstream answers in full as soon as it has the request's headers, while the caller has not
     * ended its request (a server's early 401 or 413, a gRPC status before the client's stream
     * ended): the caller gets the whole answer, then RST_STREAM NO_ERROR (RFC 9113 section 8.1), so
     * it stops sending instead of waiting with its stream open. curl 7.88 waited 60 s here.
     */
    @Test
    void anAnswerThatEndsBeforeTheRequestEndsTheCallersStream() throws Exception {
        int port = proxyTo(server(n -> (ctx, h) -> answer(ctx, h.stream(), "answered " + h.headers().method())));
        var got = new java.util.concurrent.LinkedBlockingQueue<String>();
        Channel client = new io.netty.bootstrap.Bootstrap().group(loops.workers()).channel(loops.channelType())
                .handler(new ChannelInitializer<Channel>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        ch.pipeline().addLast(Http2FrameCodecBuilder.forClient().build(), new io.netty.handler.codec.http2.Http2ChannelDuplexHandler() {
                            @Override
                            public void channelActive(ChannelHandlerContext ctx) {
                                var headers = new DefaultHttp2Headers().method("POST").scheme("http").path("/orders").authority("shop");
                                ctx.writeAndFlush(new DefaultHttp2HeadersFrame(headers, false).stream(newStream())); // the body never comes
                            }

                            @Override
                            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                                if (msg instanceof Http2HeadersFrame h) {
                                    got.add("headers " + h.headers().status() + (h.isEndStream() ? " end" : ""));
                                } else if (msg instanceof io.netty.handler.codec.http2.Http2DataFrame d) {
                                    got.add("data " + d.content().toString(StandardCharsets.UTF_8) + (d.isEndStream() ? " end" : ""));
                                } else if (msg instanceof io.netty.handler.codec.http2.Http2ResetFrame r) {
                                    got.add("reset " + Http2Error.valueOf(r.errorCode()));
                                }
                                ReferenceCountUtil.release(msg);
                            }
                        });
                    }
                }).connect("127.0.0.1", port).sync().channel();
        others.add(() -> client.close().sync());
        assertEquals("headers 200", got.poll(5, TimeUnit.SECONDS));
        assertEquals("data answered POST end", got.poll(5, TimeUnit.SECONDS));
        assertEquals("reset NO_ERROR", got.poll(5, TimeUnit.SECONDS), "the caller's open stream is ended once it has its answer");
    }
}
