package dev.isthmus.controller.nats;

import dev.isthmus.controller.config.ControllerConfig;
import io.nats.client.Connection;
import io.nats.client.ConnectionListener;
import io.nats.client.Dispatcher;
import io.nats.client.MessageHandler;
import io.nats.client.Nats;
import io.nats.client.Options;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;
import org.jboss.logging.Logger;

/**
 * The controller's one connection to its regional NATS server. It connects in the background and
 * keeps reconnecting for as long as the process runs (the client's own reconnect logic); the rest of
 * the controller publishes and subscribes through it and reads {@link #isConnected()}.
 */
@ApplicationScoped
public class NatsConnection {

    private static final Logger LOG = Logger.getLogger(NatsConnection.class);

    private final ControllerConfig config;
    private final AtomicReference<Connection> connection = new AtomicReference<>();
    private final List<Subscription> subscriptions = new ArrayList<>();
    private final java.util.Map<String, Dispatcher> dispatchers = new java.util.HashMap<>();
    private final List<Runnable> onConnected = new java.util.concurrent.CopyOnWriteArrayList<>();

    public NatsConnection(ControllerConfig config) {
        this.config = config;
    }

    private record Subscription(String subject, MessageHandler handler) {
    }

    void start(@Observes StartupEvent event) throws InterruptedException {
        ConnectionListener listener = (conn, type) -> {
            LOG.infof("event=nats_%s cluster=%s server=%s", type.name().toLowerCase(), config.cluster().name(),
                    conn.getConnectedUrl());
            if (type == ConnectionListener.Events.CONNECTED) {
                onFirstConnect(conn);
            }
            if (type == ConnectionListener.Events.CONNECTED || type == ConnectionListener.Events.RECONNECTED) {
                onConnected.forEach(Runnable::run);
            }
        };
        Options options = Options.builder()
                .servers(config.nats().url().split(","))
                .connectionName("isthmus-controller-" + config.cluster().name())
                .maxReconnects(-1)
                .reconnectDelayHandler(attempts -> backoff(attempts, config.nats().maxReconnectWait()))
                .connectionTimeout(Duration.ofSeconds(2))
                .pingInterval(Duration.ofSeconds(2))
                .connectionListener(listener)
                .errorListener(new io.nats.client.ErrorListener() {
                    @Override
                    public void errorOccurred(Connection conn, String error) {
                        LOG.warnf("event=nats_error cluster=%s error=%s", config.cluster().name(), error);
                    }
                })
                .build();
        Nats.connectAsynchronously(options, true);
    }

    /**
     * The wait before reconnect attempt {@code attempts} (counted by the client over its whole server
     * list): 250 ms doubling up to {@code max}, plus up to 25% random jitter so the controllers of a
     * region do not all come back in the same instant.
     */
    static Duration backoff(long attempts, Duration max) {
        long base = 250L << Math.min(Math.max(attempts - 1, 0), 10);
        long capped = Math.min(base, max.toMillis());
        long jitter = (long) (capped * 0.25 * java.util.concurrent.ThreadLocalRandom.current().nextDouble());
        return Duration.ofMillis(capped + jitter);
    }

    private synchronized void onFirstConnect(Connection conn) {
        if (connection.compareAndSet(null, conn)) {
            for (Subscription s : subscriptions) {
                dispatchers.put(s.subject(), conn.createDispatcher(s.handler()).subscribe(s.subject()));
            }
        }
    }

    /**
     * Subscribes now, or as soon as the first connection is made; kept across reconnects. Each
     * subscription has its own dispatcher thread, so a large registry being processed never holds up
     * heartbeats; messages of one subscription are handled one at a time, in order.
     */
    public synchronized void subscribe(String subject, MessageHandler handler) {
        subscriptions.add(new Subscription(subject, handler));
        Connection conn = connection.get();
        if (conn != null) {
            dispatchers.put(subject, conn.createDispatcher(handler).subscribe(subject));
        }
    }

    /** Stops a subscription made with {@link #subscribe}. */
    public synchronized void unsubscribe(String subject) {
        subscriptions.removeIf(s -> s.subject().equals(subject));
        Dispatcher d = dispatchers.remove(subject);
        Connection conn = connection.get();
        if (d != null && conn != null) {
            conn.closeDispatcher(d);
        }
    }

    /** The largest message the server accepts (1 MiB until connected, the NATS default). */
    public long maxPayload() {
        Connection conn = connection.get();
        return conn == null || conn.getServerInfo() == null ? 1024 * 1024 : conn.getServerInfo().getMaxPayload();
    }

    /** Runs {@code action} after every (re)connection, e.g. to ask peers for a sync. */
    public void onConnected(Runnable action) {
        onConnected.add(action);
        if (isConnected()) {
            action.run();
        }
    }

    /** Publishes if connected (the client buffers during a reconnect); false if never connected. */
    public boolean publish(String subject, String payload) {
        Connection conn = connection.get();
        if (conn == null) {
            return false;
        }
        conn.publish(subject, payload.getBytes(StandardCharsets.UTF_8));
        return true;
    }

    /** Publishes with headers (signed federation messages); false if never connected. */
    public boolean publish(String subject, io.nats.client.impl.Headers headers, byte[] payload) {
        Connection conn = connection.get();
        if (conn == null) {
            return false;
        }
        conn.publish(subject, headers, payload);
        return true;
    }

    /** Answers a request. */
    public void reply(String replyTo, byte[] payload) {
        Connection conn = connection.get();
        if (conn != null) {
            conn.publish(replyTo, payload);
        }
    }

    /**
     * Sends a request and waits for the first answer; null on timeout. Throws when no one listens on
     * the subject (the server says so at once) or the connection fails.
     */
    public io.nats.client.Message request(String subject, byte[] payload, Duration timeout) throws Exception {
        Connection conn = connection.get();
        if (conn == null) {
            throw new IllegalStateException("not connected to NATS");
        }
        try {
            return conn.request(subject, payload).get(timeout.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            return null;
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.CancellationException e) {
            throw new IllegalStateException("no controller listens on " + subject, e);
        }
    }

    public boolean isConnected() {
        Connection conn = connection.get();
        return conn != null && conn.getStatus() == Connection.Status.CONNECTED;
    }

    public Optional<String> connectedUrl() {
        return Optional.ofNullable(connection.get()).map(Connection::getConnectedUrl);
    }

    void stop(@Observes ShutdownEvent event) throws InterruptedException {
        Connection conn = connection.get();
        if (conn != null) {
            conn.close();
        }
    }
}
