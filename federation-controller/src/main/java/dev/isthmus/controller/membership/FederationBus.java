package dev.isthmus.controller.membership;

import dev.isthmus.api.names.ClusterName;
import dev.isthmus.api.names.FederationName;
import dev.isthmus.api.nats.Subjects;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.nats.NatsConnection;
import io.micrometer.core.instrument.MeterRegistry;
import io.nats.client.Message;
import io.nats.client.impl.Headers;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.util.Base64;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.jboss.logging.Logger;

/**
 * The federation's message bus as the rest of the controller sees it: {@link #publish} signs with
 * this cluster's key and sends on {@code isthmus.<federation>.<suffix>}; inbound messages of this
 * federation are verified ({@link MessageAuth}) before the handler registered for their kind sees
 * them. Refused messages are dropped, counted in {@code isthmus_federation_messages_rejected} by
 * kind and reason, and logged at most once per reason and kind every 10 s. A cluster that is not a
 * member of a federation neither publishes nor accepts anything.
 */
@ApplicationScoped
public class FederationBus {

    private static final Logger LOG = Logger.getLogger(FederationBus.class);
    /** Kinds whose subject ends with the sending cluster's name. */
    private static final Set<String> PER_CLUSTER = Set.of("heartbeat", "registry", "registry-delta");

    /** A verified message. */
    public record Inbound(String kind, String sender, byte[] data) {
    }

    private final ControllerConfig config;
    private final NatsConnection nats;
    private final Membership membership;
    private final MeterRegistry meters;
    private final MessageAuth auth = new MessageAuth();
    private final Map<String, Consumer<Inbound>> handlers = new ConcurrentHashMap<>();
    private final Map<String, Long> lastLogged = new ConcurrentHashMap<>();
    private final AtomicLong lastSequence = new AtomicLong();
    private final Object publishLock = new Object();

    public FederationBus(ControllerConfig config, NatsConnection nats, Membership membership, MeterRegistry meters) {
        this.config = config;
        this.nats = nats;
        this.membership = membership;
        this.meters = meters;
    }

    void start(@Observes StartupEvent event) {
        handlers.put("membership", membership::onRoster);
        nats.subscribe("isthmus.>", this::receive);
    }

    /** Registers the handler of one kind (heartbeat, registry, registry-sync, membership, join). */
    public void on(String kind, Consumer<Inbound> handler) {
        handlers.put(kind, handler);
    }

    /**
     * Signs and publishes on {@code isthmus.<federation>.<suffix>}; false when this cluster is not a
     * member or NATS never connected. Publishes are serialized so sequences go out in order.
     */
    public boolean publish(String suffix, byte[] data) {
        var roster = membership.roster();
        if (roster.isEmpty()) {
            return false;
        }
        String subject = new Subjects(FederationName.of(roster.get().federation())).prefix() + suffix;
        String self = config.cluster().name();
        synchronized (publishLock) {
            long seq = lastSequence.updateAndGet(last -> Math.max(last + 1, System.currentTimeMillis() * 1000));
            var headers = new Headers();
            headers.put(MessageAuth.SENDER, self);
            headers.put(MessageAuth.SEQUENCE, Long.toString(seq));
            headers.put(MessageAuth.SIGNATURE, Base64.getEncoder()
                    .encodeToString(membership.identity().sign(MessageAuth.signedBytes(subject, self, seq, data))));
            boolean sent = nats.publish(subject, headers, data);
            if (sent) {
                meters.counter("isthmus_federation_messages_published", "subject", kindOf(suffix)).increment();
            }
            return sent;
        }
    }

    /** Forgets replay state for a cluster that left. */
    public void forget(String cluster) {
        auth.forget(cluster);
    }

    private static String kindOf(String suffix) {
        int dot = suffix.indexOf('.');
        return dot < 0 ? suffix : suffix.substring(0, dot);
    }

    private void receive(Message msg) {
        // isthmus.<federation>.<kind>[.<cluster>]
        String[] parts = msg.getSubject().split("\\.");
        if (parts.length < 3) {
            return;
        }
        var roster = membership.roster();
        if (roster.isEmpty() || !parts[1].equals(roster.get().federation())) {
            return;
        }
        String kind = parts[2];
        if (kind.equals("join")) {
            membership.handleJoinRequest(msg);
            return;
        }
        Consumer<Inbound> handler = handlers.get(kind);
        if (handler == null) {
            return;
        }
        String subjectCluster = PER_CLUSTER.contains(kind) ? (parts.length == 4 ? parts[3] : "") : null;
        Headers h = msg.getHeaders();
        String sender = h == null ? null : h.getFirst(MessageAuth.SENDER);
        if (config.cluster().name().equals(sender)) {
            return;
        }
        var verdict = auth.check(roster.get(), msg.getSubject(), subjectCluster, sender,
                h == null ? null : h.getFirst(MessageAuth.SEQUENCE), h == null ? null : h.getFirst(MessageAuth.SIGNATURE),
                msg.getData() == null ? new byte[0] : msg.getData(), System.currentTimeMillis());
        if (verdict != MessageAuth.Verdict.OK) {
            reject(kind, verdict.label(), msg.getSubject(), sender);
            return;
        }
        meters.counter("isthmus_federation_messages_received", "subject", kind).increment();
        try {
            handler.accept(new Inbound(kind, sender, msg.getData()));
        } catch (RuntimeException e) {
            reject(kind, "malformed", msg.getSubject(), sender + ": " + e.getMessage());
        }
    }

    /** Counts and (rate-limited) logs a refused message; handlers call it for content they refuse. */
    public void reject(String kind, String reason, String subject, String detail) {
        meters.counter("isthmus_federation_messages_rejected", "subject", kind, "reason", reason).increment();
        long now = System.currentTimeMillis();
        String key = kind + "/" + reason;
        Long last = lastLogged.get(key);
        if (last == null || now - last > 10_000) {
            lastLogged.put(key, now);
            LOG.warnf("event=message_rejected kind=%s reason=%s subject=%s detail=%s (logged once per 10 s per reason)", kind,
                    reason, subject, detail);
        }
    }

    /** The subject of a per-cluster kind for this cluster, e.g. {@code registry.us-east}. */
    public String own(String kind) {
        return kind + "." + ClusterName.of(config.cluster().name()).value();
    }
}
