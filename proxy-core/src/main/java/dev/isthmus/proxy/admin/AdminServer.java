package dev.isthmus.proxy.admin;

import dev.isthmus.proxy.EventLoops;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * The admin endpoint of a proxy: {@code GET /ready} (200 when the proxy can serve, 503 with the
 * reason otherwise), {@code GET /metrics} (Prometheus text format) and {@code GET /config_dump}
 * (the configuration in force, as JSON). It runs on the proxy's own event loops and never on the
 * request path.
 */
public final class AdminServer implements AutoCloseable {

    private final Channel channel;

    private AdminServer(Channel channel) {
        this.channel = channel;
    }

    /**
     * Binds the admin endpoint.
     *
     * @param readiness answers whether the proxy is ready
     * @param configDump the configuration in force, as a JSON document
     */
    public static AdminServer start(EventLoops loops, InetSocketAddress address, PrometheusMeterRegistry registry,
            BooleanSupplier readiness, Supplier<String> configDump) throws InterruptedException {
        var handler = new AdminHandler(registry, readiness, configDump);
        Channel ch = new ServerBootstrap()
                .group(loops.boss(), loops.workers())
                .channel(loops.serverChannelType())
                .childHandler(new ChannelInitializer<>() {
                    @Override
                    protected void initChannel(Channel c) {
                        c.pipeline().addLast(new HttpServerCodec(), new HttpObjectAggregator(8192), handler);
                    }
                })
                .bind(address).sync().channel();
        return new AdminServer(ch);
    }

    public InetSocketAddress address() {
        return (InetSocketAddress) channel.localAddress();
    }

    @Override
    public void close() {
        channel.close().syncUninterruptibly();
    }

    @io.netty.channel.ChannelHandler.Sharable
    private static final class AdminHandler extends SimpleChannelInboundHandler<FullHttpRequest> {
        private final PrometheusMeterRegistry registry;
        private final BooleanSupplier readiness;
        private final Supplier<String> configDump;

        AdminHandler(PrometheusMeterRegistry registry, BooleanSupplier readiness, Supplier<String> configDump) {
            this.registry = registry;
            this.readiness = readiness;
            this.configDump = configDump;
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
            if (!req.decoderResult().isSuccess()) {
                send(ctx, req, HttpResponseStatus.BAD_REQUEST, "text/plain", "malformed HTTP request\n");
                return;
            }
            if (!HttpMethod.GET.equals(req.method()) && !HttpMethod.HEAD.equals(req.method())) {
                send(ctx, req, HttpResponseStatus.METHOD_NOT_ALLOWED, "text/plain", "only GET is served here\n");
                return;
            }
            String path = new QueryStringDecoder(req.uri()).path();
            switch (path) {
                case "/ready" -> {
                    boolean ready = readiness.getAsBoolean();
                    send(ctx, req, ready ? HttpResponseStatus.OK : HttpResponseStatus.SERVICE_UNAVAILABLE,
                            "text/plain", ready ? "LIVE\n" : "NOT READY\n");
                }
                case "/metrics" -> send(ctx, req, HttpResponseStatus.OK,
                        "text/plain; version=0.0.4; charset=utf-8", registry.scrape());
                case "/config_dump" -> {
                    String dump;
                    try {
                        dump = configDump.get();
                    } catch (RuntimeException e) {
                        // a bug in the dump must not look like a dead proxy: say what failed
                        send(ctx, req, HttpResponseStatus.INTERNAL_SERVER_ERROR, "text/plain", "config_dump failed: " + e + "\n");
                        return;
                    }
                    send(ctx, req, HttpResponseStatus.OK, "application/json", dump);
                }
                default -> send(ctx, req, HttpResponseStatus.NOT_FOUND, "text/plain",
                        "no such admin path: " + path + " (try /ready, /metrics, /config_dump)\n");
            }
        }

        private static void send(ChannelHandlerContext ctx, FullHttpRequest req, HttpResponseStatus status,
                String contentType, String body) {
            byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
            FullHttpResponse res = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status,
                    HttpMethod.HEAD.equals(req.method()) ? Unpooled.EMPTY_BUFFER : Unpooled.wrappedBuffer(bytes));
            res.headers().set(HttpHeaderNames.CONTENT_TYPE, contentType);
            res.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, bytes.length);
            boolean keepAlive = HttpUtil.isKeepAlive(req);
            if (keepAlive) {
                res.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
                ctx.writeAndFlush(res);
            } else {
                ctx.writeAndFlush(res).addListener(ChannelFutureListener.CLOSE);
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }
    }
}
