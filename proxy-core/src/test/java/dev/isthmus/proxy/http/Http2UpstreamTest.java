package dev.isthmus.proxy.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http2.DefaultHttp2DataFrame;
import io.netty.handler.codec.http2.DefaultHttp2FrameReader;
import io.netty.handler.codec.http2.DefaultHttp2FrameWriter;
import io.netty.handler.codec.http2.DefaultHttp2Headers;
import io.netty.handler.codec.http2.DefaultHttp2HeadersFrame;
import io.netty.handler.codec.http2.DefaultHttp2ResetFrame;
import io.netty.handler.codec.http2.DefaultHttp2WindowUpdateFrame;
import io.netty.handler.codec.http2.Http2CodecUtil;
import io.netty.handler.codec.http2.Http2DataFrame;
import io.netty.handler.codec.http2.Http2Error;
import io.netty.handler.codec.http2.Http2Exception;
import io.netty.handler.codec.http2.Http2FrameAdapter;
import io.netty.handler.codec.http2.Http2Headers;
import io.netty.handler.codec.http2.Http2HeadersFrame;
import io.netty.handler.codec.http2.Http2ResetFrame;
import io.netty.handler.codec.http2.Http2Settings;
import io.netty.handler.codec.http2.Http2Stream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The relay's client end of an upstream HTTP/2 connection, frame by frame: the server's side is
 * played by hand (frames written with Netty's frame writer, what the codec writes read back with
 * Netty's frame reader), to reach what a well-behaved server never does (overrun a window, use a
 * stream never opened) and to see each frame the codec sends. The relay's behaviour over it, with
 * real servers and clients, is in {@link GrpcThroughProxyTest}, {@link RefusedStreamsTest} and
 * {@link HttpProxyTest}.
 */
class Http2UpstreamTest {

    /** What the codec wrote, as frames. */
    record Frame(String type, int stream, Object value, boolean endStream) {
    }

    /** What reached the handler after the codec. */
    private final List<Object> seen = new ArrayList<>();
    private final Http2Upstream codec = new Http2Upstream();
    private final EmbeddedChannel ch = new EmbeddedChannel(codec, new ChannelInboundHandlerAdapter() {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            seen.add(msg);
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
            seen.add(evt);
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            seen.add(cause);
        }
    });
    private final DefaultHttp2FrameWriter server = new DefaultHttp2FrameWriter();
    private final DefaultHttp2FrameReader reader = new DefaultHttp2FrameReader();
    private final EmbeddedChannel readerContext = new EmbeddedChannel(new ChannelInboundHandlerAdapter());
    private boolean prefaceRead;

    @AfterEach
    void close() {
        ch.finishAndReleaseAll();
        readerContext.finishAndReleaseAll();
        for (Object o : seen) {
            io.netty.util.ReferenceCountUtil.release(o);
        }
    }

    /** The frames the codec wrote since the last call (the client preface checked and skipped first). */
    List<Frame> written() throws Http2Exception {
        if (ch.isOpen()) {
            ch.flushOutbound();
        }
        ByteBuf all = Unpooled.buffer();
        for (Object o; (o = ch.readOutbound()) != null; ) {
            all.writeBytes((ByteBuf) o);
            ((ByteBuf) o).release();
        }
        if (!prefaceRead) {
            ByteBuf preface = Http2CodecUtil.connectionPrefaceBuf();
            assertEquals(preface, all.readSlice(preface.readableBytes()), "the client preface comes first");
            preface.release();
            prefaceRead = true;
        }
        var frames = new ArrayList<Frame>();
        reader.readFrame(readerContext.pipeline().firstContext(), all, new Http2FrameAdapter() {
            @Override
            public int onDataRead(ChannelHandlerContext ctx, int streamId, ByteBuf data, int padding, boolean endOfStream) {
                frames.add(new Frame("DATA", streamId, data.toString(StandardCharsets.UTF_8), endOfStream));
                return 0;
            }

            @Override
            public void onHeadersRead(ChannelHandlerContext ctx, int streamId, Http2Headers headers, int padding, boolean endOfStream) {
                frames.add(new Frame("HEADERS", streamId, headers, endOfStream));
            }

            @Override
            public void onHeadersRead(ChannelHandlerContext ctx, int streamId, Http2Headers headers, int dep, short weight, boolean ex,
                    int padding, boolean endOfStream) {
                onHeadersRead(ctx, streamId, headers, padding, endOfStream);
            }

            @Override
            public void onSettingsRead(ChannelHandlerContext ctx, Http2Settings settings) {
                frames.add(new Frame("SETTINGS", 0, settings, false));
            }

            @Override
            public void onSettingsAckRead(ChannelHandlerContext ctx) {
                frames.add(new Frame("SETTINGS_ACK", 0, null, false));
            }

            @Override
            public void onPingAckRead(ChannelHandlerContext ctx, long data) {
                frames.add(new Frame("PING_ACK", 0, data, false));
            }

            @Override
            public void onRstStreamRead(ChannelHandlerContext ctx, int streamId, long errorCode) {
                frames.add(new Frame("RST_STREAM", streamId, errorCode, false));
            }

            @Override
            public void onGoAwayRead(ChannelHandlerContext ctx, int lastStreamId, long errorCode, ByteBuf debugData) {
                frames.add(new Frame("GOAWAY", lastStreamId, errorCode, false));
            }

            @Override
            public void onWindowUpdateRead(ChannelHandlerContext ctx, int streamId, int increment) {
                frames.add(new Frame("WINDOW_UPDATE", streamId, increment, false));
            }
        });
        all.release();
        return frames;
    }

    /** Frames from the server, as its writer puts them on the wire. */
    void fromServer(java.util.function.Consumer<ChannelHandlerContext> frames) {
        var out = new EmbeddedChannel(new ChannelInboundHandlerAdapter());
        frames.accept(out.pipeline().firstContext());
        out.flushOutbound();
        for (Object o; (o = out.readOutbound()) != null; ) {
            if (ch.isOpen()) {
                ch.writeInbound(o);
            } else { // the codec closed the connection on a frame before
                io.netty.util.ReferenceCountUtil.release(o);
            }
        }
        out.finishAndReleaseAll();
    }

    void serverSettings(Http2Settings settings) {
        fromServer(ctx -> server.writeSettings(ctx, settings, ctx.newPromise()));
    }

    /** After the server's (default) SETTINGS: a stream whose whole request (headers only) has been sent, as stream 1; what was written is read. */
    Http2Upstream.Stream requestSent() throws Http2Exception {
        written();
        serverSettings(new Http2Settings());
        var s = codec.newStream();
        send(s, new DefaultHttp2HeadersFrame(request(), true));
        written();
        return s;
    }

    static Http2Headers request() {
        return new DefaultHttp2Headers().method("POST").scheme("http").authority("app").path("/");
    }

    ChannelFuture send(Http2Upstream.Stream s, Object frame) {
        return ch.writeAndFlush(frame instanceof Http2HeadersFrame h ? h.stream(s) : ((Http2DataFrame) frame).stream(s));
    }

    static ByteBuf bytes(int n) {
        return Unpooled.wrappedBuffer("x".repeat(n).getBytes(StandardCharsets.US_ASCII));
    }

    @Test
    void theConnectionOpensWithPrefaceAndSettingsAndAnswersTheServersSettingsAndPings() throws Exception {
        var first = written();
        assertEquals("SETTINGS", first.get(0).type());
        var settings = (Http2Settings) first.get(0).value();
        assertEquals(Boolean.FALSE, settings.pushEnabled(), "no server push");
        assertEquals(8192L, settings.maxHeaderListSize());

        serverSettings(new Http2Settings().maxConcurrentStreams(7));
        fromServer(ctx -> server.writePing(ctx, false, 42L, ctx.newPromise()));
        var frames = written();
        assertEquals(List.of("SETTINGS_ACK", "PING_ACK"), frames.stream().map(Frame::type).toList());
        assertEquals(42L, frames.get(1).value());
        assertEquals(7, codec.maxStreams());
    }

    @Test
    void streamsOverTheServersLimitWaitAndTakeTheirIdsInOrderAsSlotsFree() throws Exception {
        written();
        serverSettings(new Http2Settings().maxConcurrentStreams(2));
        var streams = new ArrayList<Http2Upstream.Stream>();
        for (int i = 0; i < 4; i++) {
            var s = codec.newStream();
            streams.add(s);
            send(s, new DefaultHttp2HeadersFrame(request(), false));
            send(s, new DefaultHttp2DataFrame(bytes(3), true));
        }
        var frames = written();
        assertEquals(List.of(1, 1, 3, 3), frames.stream().filter(f -> !f.type().startsWith("SETTINGS")).map(Frame::stream).toList(),
                "two streams, headers then body");
        assertTrue(streams.get(2).waiting() && streams.get(3).waiting());
        assertEquals(Http2Stream.State.IDLE, streams.get(2).state());

        // stream 1 answered in full: the first waiting stream takes id 5
        fromServer(ctx -> server.writeHeaders(ctx, 1, new DefaultHttp2Headers().status("200"), 0, true, ctx.newPromise()));
        assertInstanceOf(Http2HeadersFrame.class, seen.get(0));
        assertEquals(new Http2Upstream.Closed(streams.get(0)), seen.get(1));
        assertFalse(streams.get(2).waiting());
        assertEquals(5, streams.get(2).id());
        assertTrue(streams.get(3).waiting());
        frames = written();
        assertEquals(List.of("HEADERS", "DATA"), frames.stream().map(Frame::type).toList());
        assertEquals(5, frames.get(0).stream());
        assertTrue(frames.get(1).endStream());

        // a waiting stream reset by the relay is dropped: it never takes an id, and nothing goes out for it
        var dropped = streams.get(3);
        ch.writeAndFlush(new DefaultHttp2ResetFrame(Http2Error.CANCEL).stream(dropped));
        assertEquals(Http2Stream.State.CLOSED, dropped.state());
        fromServer(ctx -> server.writeRstStream(ctx, 3, Http2Error.REFUSED_STREAM.code(), ctx.newPromise()));
        assertEquals(List.of(), written());
        assertEquals(0, dropped.id());
    }

    @Test
    void dataBeyondTheSendWindowWaitsForTheServersWindowUpdateAndTrailersWaitBehindIt() throws Exception {
        written();
        serverSettings(new Http2Settings().initialWindowSize(10));
        var s = codec.newStream();
        send(s, new DefaultHttp2HeadersFrame(request(), false));
        ChannelFuture body = send(s, new DefaultHttp2DataFrame(bytes(25), false));
        ChannelFuture trailers = send(s, new DefaultHttp2HeadersFrame(new DefaultHttp2Headers().set("grpc-status", "0"), true));
        var frames = written();
        assertEquals(List.of("SETTINGS_ACK", "HEADERS", "DATA"), frames.stream().map(Frame::type).toList());
        assertEquals("x".repeat(10), frames.get(2).value(), "as much as the stream's window takes");
        assertFalse(body.isDone());
        assertFalse(trailers.isDone());

        fromServer(ctx -> server.writeWindowUpdate(ctx, 1, 100, ctx.newPromise()));
        frames = written();
        assertEquals(List.of("DATA", "HEADERS"), frames.stream().map(Frame::type).toList());
        assertEquals("x".repeat(15), frames.get(0).value());
        assertTrue(frames.get(1).endStream());
        assertTrue(body.isSuccess());
        assertTrue(trailers.isSuccess());
        assertEquals(Http2Stream.State.HALF_CLOSED_LOCAL, s.state());
    }

    @Test
    void bytesGivenBackAreAnnouncedWhenHalfAWindowIsDueAndAClosedStreamsGoBackToTheConnection() throws Exception {
        var s = requestSent();
        int half = Http2Upstream.WINDOW / 2;
        fromServer(ctx -> {
            server.writeHeaders(ctx, 1, new DefaultHttp2Headers().status("200"), 0, false, ctx.newPromise());
            server.writeData(ctx, 1, bytes(half - 1), 0, false, ctx.newPromise());
        });
        ch.writeAndFlush(new DefaultHttp2WindowUpdateFrame(half - 1).stream(s));
        assertEquals(List.of(), written(), "under half a window: nothing announced yet");
        fromServer(ctx -> server.writeData(ctx, 1, bytes(10), 0, false, ctx.newPromise()));
        ch.writeAndFlush(new DefaultHttp2WindowUpdateFrame(10).stream(s));
        var frames = written();
        assertEquals(List.of(new Frame("WINDOW_UPDATE", 1, half + 9, false), new Frame("WINDOW_UPDATE", 0, half + 9, false)), frames);

        // 100 bytes read and not given back when the server resets the stream: they go back to the connection
        fromServer(ctx -> server.writeData(ctx, 1, bytes(100), 0, false, ctx.newPromise()));
        fromServer(ctx -> server.writeRstStream(ctx, 1, Http2Error.INTERNAL_ERROR.code(), ctx.newPromise()));
        assertTrue(seen.stream().anyMatch(o -> o instanceof Http2ResetFrame r && r.errorCode() == Http2Error.INTERNAL_ERROR.code()));
        assertEquals(Http2Stream.State.CLOSED, s.state());
        assertEquals(new Http2Upstream.Closed(s), seen.get(seen.size() - 1));
        ch.writeAndFlush(new DefaultHttp2WindowUpdateFrame(100).stream(s)); // late: ignored, not counted twice
        assertEquals(List.of(), written(), "100 bytes are not half a window");
    }

    @Test
    void dataPastTheConnectionsWindowEndsTheConnectionWithAFlowControlError() throws Exception {
        var s = requestSent();
        fromServer(ctx -> {
            server.writeHeaders(ctx, 1, new DefaultHttp2Headers().status("200"), 0, false, ctx.newPromise());
            for (int i = 0; i < 5; i++) { // 5 x 16,000 bytes, never given back: past 65,535
                server.writeData(ctx, 1, bytes(16_000), 0, false, ctx.newPromise());
            }
        });
        var frames = written();
        assertEquals("GOAWAY", frames.get(frames.size() - 1).type());
        assertEquals(Http2Error.FLOW_CONTROL_ERROR.code(), frames.get(frames.size() - 1).value());
        assertFalse(ch.isOpen());
        assertEquals(Http2Stream.State.CLOSED, s.state());
        assertTrue(seen.contains(new Http2Upstream.Closed(s)), "the relay learns the stream is gone");
    }

    @Test
    void aFrameOnAStreamNeverOpenedOrAPushPromiseIsAProtocolError() throws Exception {
        written();
        serverSettings(new Http2Settings());
        fromServer(ctx -> server.writeHeaders(ctx, 9, new DefaultHttp2Headers().status("200"), 0, true, ctx.newPromise()));
        var frames = written();
        assertEquals(new Frame("GOAWAY", 0, Http2Error.PROTOCOL_ERROR.code(), false), frames.get(frames.size() - 1));
        assertFalse(ch.isOpen());
        assertTrue(seen.stream().anyMatch(o -> o instanceof Http2Exception e && e.getMessage().contains("stream 9, which was never opened")),
                String.valueOf(seen));
    }

    @Test
    void anAnswerThatFailsHeaderValidationResetsOnlyItsStream() throws Exception {
        written();
        serverSettings(new Http2Settings());
        var bad = codec.newStream();
        var good = codec.newStream();
        send(bad, new DefaultHttp2HeadersFrame(request(), true));
        send(good, new DefaultHttp2HeadersFrame(request(), true));
        written();
        fromServer(ctx -> {
            server.writeHeaders(ctx, 1, new DefaultHttp2Headers(false).status("200").add("Upper-Case", "no"), 0, true, ctx.newPromise());
            server.writeHeaders(ctx, 3, new DefaultHttp2Headers().status("204"), 0, true, ctx.newPromise());
        });
        var frames = written();
        assertEquals(List.of(new Frame("RST_STREAM", 1, Http2Error.PROTOCOL_ERROR.code(), false)), frames);
        assertEquals(Http2Stream.State.CLOSED, bad.state());
        assertEquals(Http2Stream.State.CLOSED, good.state());
        assertTrue(ch.isOpen());
        var answered = seen.stream().filter(o -> o instanceof Http2HeadersFrame).map(o -> ((Http2HeadersFrame) o).headers().status().toString()).toList();
        assertEquals(List.of("204"), answered);
    }

    @Test
    void aGoAwayClosesTheStreamsAboveItsLastIdFailsTheWaitingOnesAndRefusesNewOnes() throws Exception {
        written();
        serverSettings(new Http2Settings().maxConcurrentStreams(2));
        var s1 = codec.newStream();
        var s3 = codec.newStream();
        var s5 = codec.newStream();
        send(s1, new DefaultHttp2HeadersFrame(request(), true));
        send(s3, new DefaultHttp2HeadersFrame(request(), true));
        ChannelFuture waiting = send(s5, new DefaultHttp2HeadersFrame(request(), true));
        written();
        fromServer(ctx -> server.writeGoAway(ctx, 1, Http2Error.NO_ERROR.code(), Unpooled.EMPTY_BUFFER, ctx.newPromise()));
        assertEquals(new Http2Upstream.GoAway(1, 0), seen.get(0));
        assertEquals(new Http2Upstream.Closed(s3), seen.get(1), "stream 3 was not processed");
        assertEquals(Http2Stream.State.HALF_CLOSED_LOCAL, s1.state(), "stream 1 goes on");
        assertTrue(waiting.isDone() && !waiting.isSuccess());
        ChannelFuture late = send(codec.newStream(), new DefaultHttp2HeadersFrame(request(), true));
        assertFalse(late.isSuccess());
        assertNull(written().stream().filter(f -> f.type().equals("HEADERS")).findAny().orElse(null));
    }

    @Test
    void whenStreamIdsRunOutTheConnectionGoesAwayAfterTheLastOne() throws Exception {
        written();
        serverSettings(new Http2Settings().maxConcurrentStreams(1));
        codec.skipStreamIdsTo(Integer.MAX_VALUE);
        var last = codec.newStream();
        var next = codec.newStream();
        send(last, new DefaultHttp2HeadersFrame(request(), true));
        ChannelFuture waiting = send(next, new DefaultHttp2HeadersFrame(request(), true));
        assertEquals(Integer.MAX_VALUE, last.id());
        assertEquals(new Http2Upstream.GoAway(Integer.MAX_VALUE, 0), seen.get(0), "the relay takes no new stream to this connection");
        assertTrue(waiting.isDone() && !waiting.isSuccess(), "a stream after the last is refused, to be sent on another connection");
        assertFalse(send(codec.newStream(), new DefaultHttp2HeadersFrame(request(), true)).isSuccess());
        fromServer(ctx -> server.writeHeaders(ctx, Integer.MAX_VALUE, new DefaultHttp2Headers().status("200"), 0, true, ctx.newPromise()));
        assertEquals(Http2Stream.State.CLOSED, last.state(), "the last stream is answered");
        assertTrue(ch.isOpen());
    }

    @Test
    void emptyDataFramesInARowAreAFlood() throws Exception {
        var s = requestSent();
        fromServer(ctx -> {
            server.writeHeaders(ctx, 1, new DefaultHttp2Headers().status("200"), 0, false, ctx.newPromise());
            for (int i = 0; i < Http2Upstream.MAX_EMPTY_DATA; i++) {
                server.writeData(ctx, 1, Unpooled.EMPTY_BUFFER, 0, false, ctx.newPromise());
            }
        });
        assertTrue(ch.isOpen(), "two in a row are allowed");
        fromServer(ctx -> server.writeData(ctx, 1, Unpooled.EMPTY_BUFFER, 0, false, ctx.newPromise()));
        var frames = written();
        assertEquals(new Frame("GOAWAY", 0, Http2Error.ENHANCE_YOUR_CALM.code(), false), frames.get(frames.size() - 1));
        assertFalse(ch.isOpen());
    }

    /**
     * A real server that sends PING after PING and never reads: the acknowledgements pile up once the
     * socket's buffers are full, and past {@link Http2Upstream#MAX_OUTSTANDING_CONTROL} the
     * connection is closed, rather than the proxy's memory filling with them.
     */
    @Test
    void aServerThatFloodsPingsAndDoesNotReadTheAcknowledgementsIsCutOff() throws Exception {
        var loop = new io.netty.channel.nio.NioEventLoopGroup(1);
        try (var listener = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            var flooder = new Thread(() -> {
                try (var socket = listener.accept(); var out = socket.getOutputStream()) {
                    var settings = new byte[] {0, 0, 0, 4, 0, 0, 0, 0, 0};
                    out.write(settings);
                    byte[] pings = new byte[17 * 4096];
                    for (int i = 0; i < 4096; i++) {
                        System.arraycopy(new byte[] {0, 0, 8, 6, 0, 0, 0, 0, 0}, 0, pings, i * 17, 9);
                    }
                    for (int i = 0; i < 2_000; i++) { // up to 139 MB: far more than the sockets' buffers hold
                        out.write(pings);
                    }
                } catch (java.io.IOException expected) {
                    // the client closed the connection
                }
            });
            flooder.start();
            var errors = new java.util.concurrent.LinkedBlockingQueue<Throwable>();
            var client = new io.netty.bootstrap.Bootstrap().group(loop).channel(io.netty.channel.socket.nio.NioSocketChannel.class)
                    .handler(new io.netty.channel.ChannelInitializer<io.netty.channel.Channel>() {
                        @Override
                        protected void initChannel(io.netty.channel.Channel c) {
                            c.pipeline().addLast(new Http2Upstream(), new ChannelInboundHandlerAdapter() {
                                @Override
                                public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                                    errors.add(cause);
                                }
                            });
                        }
                    })
                    .connect(listener.getLocalSocketAddress()).sync().channel();
            assertTrue(client.closeFuture().await(60, java.util.concurrent.TimeUnit.SECONDS), "the connection was closed");
            var error = errors.poll();
            assertInstanceOf(Http2Exception.class, error);
            assertEquals(Http2Error.ENHANCE_YOUR_CALM, ((Http2Exception) error).error(), error.getMessage());
            flooder.join(10_000);
        } finally {
            loop.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS);
        }
    }
}
