package dev.isthmus.proxy.http;

import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.http2.DefaultHttp2Headers;
import io.netty.handler.codec.http2.DefaultHttp2HeadersFrame;
import io.netty.handler.codec.http2.DefaultHttp2ResetFrame;
import io.netty.handler.codec.http2.Http2Error;
import io.netty.handler.codec.http2.Http2FrameCodecBuilder;
import io.netty.handler.codec.http2.Http2Headers;
import io.netty.handler.codec.http2.Http2HeadersFrame;
import io.netty.handler.codec.http2.Http2MultiplexHandler;
import io.netty.handler.codec.http2.Http2ResetFrame;
import io.netty.handler.codec.http2.Http2StreamChannel;
import io.netty.handler.codec.http2.Http2StreamChannelBootstrap;
import io.netty.handler.codec.http2.Http2StreamFrame;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.ReferenceCountUtil;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * HTTP/2 through the proxy, stream by stream: a listener that sees the HTTP/2 connection preface
 * (h2c with prior knowledge, as gRPC clients send it, or the same over the sidecars' mTLS) switches
 * that connection to HTTP/2; each stream is routed like an HTTP/1.1 request (by {@code :authority}
 * and {@code :path}) to a cluster whose upstream speaks HTTP/2 (an {@code HttpProtocolOptions} with
 * {@code http2_protocol_options}), over one multiplexed connection per endpoint, and its frames are
 * relayed both ways as they come: headers, data, trailers (gRPC status), resets. Streaming calls
 * keep streaming. The caller-identity header is handled as for HTTP/1.1. A stream to a cluster
 * that does not speak HTTP/2 is answered 502 ({@code upstream_not_http2}). Netty's limit on resets
 * per connection (rapid reset) is enforced: more than 200 in 30 s closes the connection.
 */
final class Http2Relay {

    private static final Logger log = LoggerFactory.getLogger(Http2Relay.class);
    private static final byte[] PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
    private static final Set<String> CONNECTION_SPECIFIC = Set.of("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade");
    private static final Map<EventLoop, Map<HttpProxy.PoolKey, Channel>> CONNECTIONS = new ConcurrentHashMap<>();

    private Http2Relay() {
    }

    /** First on a connection: HTTP/2 preface → the HTTP/2 pipeline; anything else → leaves the HTTP/1.1 pipeline as it is. */
    static final class PrefaceSniffer extends ByteToMessageDecoder {
        private final HttpProxy.Shared shared;

        PrefaceSniffer(HttpProxy.Shared shared) {
            this.shared = shared;
        }

        @Override
        protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
            int n = Math.min(in.readableBytes(), PREFACE.length);
            for (int i = 0; i < n; i++) {
                if (in.getByte(in.readerIndex() + i) != PREFACE[i]) {
                    ctx.pipeline().remove(this); // HTTP/1.1: the bytes go on to its decoder
                    return;
                }
            }
            if (n < PREFACE.length) {
                return; // wait for more
            }
            var p = ctx.pipeline();
            for (String h : List.of("guard", "decoder", "encoder", "aggregator", "proxy")) {
                if (p.get(h) != null) {
                    p.remove(h);
                }
            }
            p.addAfter(ctx.name(), "h2", Http2FrameCodecBuilder.forServer().validateHeaders(true)
                    .decoderEnforceMaxRstFramesPerWindow(200, 30).build());
            p.addAfter("h2", "h2-streams", new Http2MultiplexHandler(new ChannelInitializer<Http2StreamChannel>() {
                @Override
                protected void initChannel(Http2StreamChannel stream) {
                    stream.pipeline().addLast(new Downstream(shared, HttpProxy.callerOf(ctx.channel())));
                }
            }));
            p.addAfter("h2-streams", "h2-errors", new CloseOnError());
            p.remove(this);
        }
    }

    /** The end of a connection's pipeline: an I/O error (a peer's reset) closes the connection quietly. */
    private static final class CloseOnError extends ChannelInboundHandlerAdapter {
        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            log.debug("event=h2_connection_closed cause={}", cause.toString());
            ctx.close();
        }
    }

    /** One caller stream. */
    private static final class Downstream extends ChannelInboundHandlerAdapter {
        private final HttpProxy.Shared shared;
        private final String caller;
        private final ArrayDeque<Object> waiting = new ArrayDeque<>();
        private Http2StreamChannel upstream;
        private HttpProxy.Upstream cluster;
        private InetSocketAddress endpoint;
        private final long start = System.nanoTime();
        private String status = "0";
        private boolean counted;

        Downstream(HttpProxy.Shared shared, String caller) {
            this.shared = shared;
            this.caller = caller;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (msg instanceof Http2ResetFrame reset) {
                if (upstream != null) {
                    upstream.writeAndFlush(new DefaultHttp2ResetFrame(reset.errorCode()));
                }
                ctx.close();
                return;
            }
            if (cluster == null && msg instanceof Http2HeadersFrame headers) {
                open(ctx, headers);
                return;
            }
            Object copy = copy(msg);
            if (copy == null) {
                return;
            }
            if (upstream == null) {
                waiting.add(copy);
            } else {
                upstream.writeAndFlush(copy);
            }
        }

        private void open(ChannelHandlerContext ctx, Http2HeadersFrame headers) {
            Http2Headers h = headers.headers();
            String path = h.path() == null ? "/" : h.path().toString();
            int q = path.indexOf('?');
            if (!shared.permits(caller, h.method() == null ? "" : h.method().toString(), q >= 0 ? path.substring(0, q) : path)) {
                answer(ctx, "403", "rbac_denied");
                return;
            }
            var route = shared.route(h.authority() == null ? "" : h.authority().toString(), q >= 0 ? path.substring(0, q) : path, name -> {
                CharSequence v = h.get(name);
                return v == null ? null : v.toString();
            });
            if (route.isEmpty()) {
                answer(ctx, "404", "no_route");
                return;
            }
            String name = route.get().pickCluster();
            cluster = shared.clusters().apply(name);
            if (cluster == null || !cluster.http2()) {
                answer(ctx, "502", cluster == null ? "no_healthy_upstream" : "upstream_not_http2");
                return;
            }
            var picked = cluster.endpoints().pick(Set.of());
            if (picked.isEmpty()) {
                answer(ctx, "503", "no_healthy_upstream");
                return;
            }
            endpoint = picked.get();
            var out = new DefaultHttp2Headers();
            for (var e : h) {
                String k = e.getKey().toString().toLowerCase(java.util.Locale.ROOT);
                if (CONNECTION_SPECIFIC.contains(k) || k.equals(HttpProxy.CALLER_HEADER) || k.equals("te") && !e.getValue().toString().equals("trailers")) {
                    continue;
                }
                out.add(e.getKey(), e.getValue());
            }
            if (!caller.isEmpty()) {
                out.set(HttpProxy.CALLER_HEADER, caller);
            }
            var first = new DefaultHttp2HeadersFrame(out, headers.isEndStream());
            connection(ctx.channel().eventLoop(), shared.loops().channelType(), endpoint, cluster).addListener((ChannelFutureListener) f -> {
                if (!f.isSuccess()) {
                    cluster.endpoints().failed(endpoint);
                    answer(ctx, "503", "upstream_connect_failure");
                    return;
                }
                new Http2StreamChannelBootstrap(f.channel()).handler(new Upstream(ctx.channel(), this)).open().addListener(s -> {
                    if (!s.isSuccess()) {
                        answer(ctx, "503", "upstream_reset");
                        return;
                    }
                    upstream = (Http2StreamChannel) s.getNow();
                    cluster.endpoints().connected(endpoint);
                    upstream.closeFuture().addListener(c -> cluster.endpoints().released(endpoint));
                    upstream.write(first);
                    Object m;
                    while ((m = waiting.poll()) != null) {
                        upstream.write(m);
                    }
                    upstream.flush();
                });
            });
        }

        void responseHeaders(Http2HeadersFrame frame) {
            if (frame.headers().status() != null) {
                status = frame.headers().status().toString();
                if (status.startsWith("5")) {
                    cluster.endpoints().failed(endpoint);
                } else {
                    cluster.endpoints().succeeded(endpoint);
                }
            }
        }

        private void answer(ChannelHandlerContext ctx, String code, String reason) {
            status = code;
            var headers = new DefaultHttp2Headers().status(code).set(HttpProxy.REASON_HEADER, reason);
            ctx.writeAndFlush(new DefaultHttp2HeadersFrame(headers, true));
            waiting.forEach(ReferenceCountUtil::release);
            waiting.clear();
            count();
        }

        void count() {
            if (!counted) {
                counted = true;
                shared.count(cluster == null ? "none" : cluster.name(), Integer.parseInt(status), start, caller,
                        cluster != null && endpoint != null ? cluster.endpoints().region(endpoint) : "");
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            waiting.forEach(ReferenceCountUtil::release);
            waiting.clear();
            if (upstream != null && upstream.isActive()) {
                upstream.writeAndFlush(new DefaultHttp2ResetFrame(Http2Error.CANCEL));
            }
            count();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            log.debug("event=h2_stream_error listener={} cause={}", shared.listener(), cause.toString());
            ctx.close();
        }
    }

    /** The upstream side of one stream: passes every frame back to the caller's stream. */
    private static final class Upstream extends ChannelInboundHandlerAdapter {
        private final Channel downstream;
        private final Downstream owner;

        Upstream(Channel downstream, Downstream owner) {
            this.downstream = downstream;
            this.owner = owner;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (msg instanceof Http2ResetFrame reset) {
                downstream.writeAndFlush(new DefaultHttp2ResetFrame(reset.errorCode()));
                return;
            }
            if (msg instanceof Http2HeadersFrame headers) {
                owner.responseHeaders(headers);
                headers.headers().remove(HttpProxy.CALLER_HEADER);
            }
            Object copy = copy(msg);
            if (copy != null) {
                downstream.writeAndFlush(copy);
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }
    }

    /**
     * A frame read on one stream, made writable on another (a frame knows its stream): headers and
     * data are carried over (the data's buffer moves with it), anything else is dropped.
     */
    static Object copy(Object msg) {
        if (msg instanceof Http2HeadersFrame h) {
            return new DefaultHttp2HeadersFrame(h.headers(), h.isEndStream(), h.padding());
        }
        if (msg instanceof io.netty.handler.codec.http2.Http2DataFrame d) {
            return new io.netty.handler.codec.http2.DefaultHttp2DataFrame(d.content(), d.isEndStream(), d.padding());
        }
        ReferenceCountUtil.release(msg);
        return null;
    }

    /**
     * The multiplexed HTTP/2 connection of {@code cluster} to an endpoint on this event loop, made when
     * there is none. Per cluster, not per address: clusters that share an address (the subsets of a
     * service behind one east-west gateway) differ in their TLS SNI, so in where the gateway sends them.
     */
    private static io.netty.channel.ChannelFuture connection(EventLoop loop, Class<? extends io.netty.channel.socket.SocketChannel> type,
            InetSocketAddress endpoint, HttpProxy.Upstream cluster) {
        Map<HttpProxy.PoolKey, Channel> byEndpoint = CONNECTIONS.computeIfAbsent(loop, l -> new HashMap<>());
        var key = new HttpProxy.PoolKey(cluster.name(), endpoint);
        Channel existing = byEndpoint.get(key);
        if (existing != null && existing.isActive()) {
            return existing.newSucceededFuture();
        }
        var connect = new Bootstrap().group(loop).channel(type)
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) cluster.connectTimeout().toMillis())
                .handler(new ChannelInitializer<>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        if (cluster.tls() != null) {
                            SslHandler ssl = cluster.tls().newHandler(ch.alloc(), cluster.sni() != null ? cluster.sni() : endpoint.getHostString(),
                                    endpoint.getPort());
                            dev.isthmus.proxy.identity.SpiffeSslContexts.serverName(ssl, cluster.sni());
                            ch.pipeline().addLast("tls", ssl);
                        }
                        ch.pipeline().addLast(Http2FrameCodecBuilder.forClient().build());
                        ch.pipeline().addLast(new Http2MultiplexHandler(new ChannelInboundHandlerAdapter()));
                        ch.pipeline().addLast(new CloseOnError());
                    }
                }).connect(endpoint);
        byEndpoint.put(key, connect.channel());
        connect.channel().closeFuture().addListener(f -> byEndpoint.remove(key, connect.channel()));
        return connect;
    }
}
