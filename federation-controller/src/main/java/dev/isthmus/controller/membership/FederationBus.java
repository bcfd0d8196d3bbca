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
import io.quarkus.scheduler.Scheduled;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;
import org.jboss.logging.Logger;

/**
 * The federation's message bus as the rest of the controller sees it: {@link #publish} signs with
 * this cluster's key and sends on {@code isthmus.<federation>.<suffix>}; inbound messages of this
 * federation are verified ({@link MessageAuth}) before the handler registered for their kind sees
 * them. Refused messages are dropped, counted in {@code isthmus_federation_messages_rejected} by
 * kind and reason, and logged at most once per reason and kind every 10 s. A cluster that is not a
 * member of a federation neither publishes nor subscribes; a member subscribes to its federation's
 * subjects only, and of the addressed ones ({@code join.*}, {@code registry-to.*}) to its own.
 *
 * <p>Large bodies (a registry of thousands of endpoints) are gzip-compressed
 * ({@code Isthmus-Encoding: gzip}) and, when still larger than the server's {@code max_payload},
 * split into parts ({@code Isthmus-Part: <index>/<count>}, {@code Isthmus-Message: <id>}), each signed
 * on its own. The receiver verifies every part, joins them, and drops parts left incomplete for 10 s.
 */
@ApplicationScoped
public class FederationBus {

    private static final Logger LOG = Logger.getLogger(FederationBus.class);
    /** Kinds whose subject ends with the sending cluster's name. */
    private static final Set<String> PER_CLUSTER = Set.of("heartbeat", "registry", "registry-delta", "trust-bundle");
    static final String ENCODING = "Isthmus-Encoding";
    static final String PART = "Isthmus-Part";
    static final String MESSAGE = "Isthmus-Message";
    private static final int COMPRESS_ABOVE = 32 * 1024;
    private static final int MAX_INFLATED = 256 * 1024 * 1024;

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
    private final PartAssembler assembler = new PartAssembler();
    private final AtomicLong lastSequence = new AtomicLong();
    private final Object publishLock = new Object();
    private List<String> subscribed = List.of();

    public FederationBus(ControllerConfig config, NatsConnection nats, Membership membership, MeterRegistry meters) {
        this.config = config;
        this.nats = nats;
        this.membership = membership;
        this.meters = meters;
    }

    void start(@Observes StartupEvent event) {
        handlers.put("membership", membership::onRoster);
        resubscribe();
    }

    /** Runs before the other observers, so a sync request sent on joining finds the subscription in place. */
    void onMembership(@Observes @jakarta.annotation.Priority(1) Membership.MembershipChanged change) {
        resubscribe();
    }

    /** Subscribes to the current federation's subjects (and drops the old subscription). */
    private synchronized void resubscribe() {
        List<String> wanted = membership.roster().map(r -> subjects(new Subjects(FederationName.of(r.federation())).prefix()))
                .orElse(List.of());
        if (wanted.equals(subscribed)) {
            return;
        }
        subscribed.forEach(nats::unsubscribe);
        wanted.forEach(s -> nats.subscribe(s, this::receive));
        subscribed = wanted;
    }

    /**
     * What a member listens to: every member's heartbeats, registries, deltas and sync requests, the
     * roster, and, addressed to it alone, join requests and registries sent in answer to its own
     * sync requests (so a joiner's sync does not send every registry to every member), and the policy bundles
     * a member accepted from Git.
     */
    private List<String> subjects(String prefix) {
        String self = ClusterName.of(config.cluster().name()).value();
        return List.of(prefix + "heartbeat.*", prefix + "registry.*", prefix + "registry-delta.*", prefix + "registry-sync", prefix + "trust-bundle.*",
                prefix + "membership", prefix + "join." + self, prefix + "registry-to." + self, prefix + "policy.*");
    }

    /** Registers the handler of one kind (heartbeat, registry, registry-delta, registry-sync, membership). */
    public void on(String kind, Consumer<Inbound> handler) {
        handlers.put(kind, handler);
    }

    /**
     * Signs and publishes on {@code isthmus.<federation>.<suffix>}; false when this cluster is not a
     * member or NATS never connected. Publishes are serialized so sequences go out in order.
     */
    public boolean publish(String suffix, byte[] data) {
        return publish(suffix, encode(data));
    }

    /** A body ready for the wire: compressed when large. Encode once, publish many times. */
    public record Encoded(byte[] body, boolean gzip) {
    }

    public static Encoded encode(byte[] data) {
        return data.length > COMPRESS_ABOVE ? new Encoded(gzip(data), true) : new Encoded(data, false);
    }

    /** Signs and publishes an encoded body (split into parts when larger than the server's limit). */
    public boolean publish(String suffix, Encoded encoded) {
        var roster = membership.roster();
        if (roster.isEmpty()) {
            return false;
        }
        String subject = new Subjects(FederationName.of(roster.get().federation())).prefix() + suffix;
        byte[] body = encoded.body();
        var pieces = PartAssembler.split(body, (int) Math.max(16 * 1024, nats.maxPayload() - 8 * 1024));
        int count = pieces.size();
        synchronized (publishLock) {
            boolean sent = true;
            String messageId = null;
            for (int i = 0; i < count; i++) {
                byte[] part = pieces.get(i);
                long seq = nextSequence();
                var headers = sign(subject, seq, part);
                if (encoded.gzip()) {
                    headers.put(ENCODING, "gzip");
                }
                if (count > 1) {
                    messageId = messageId == null ? Long.toString(seq) : messageId;
                    headers.put(PART, (i + 1) + "/" + count);
                    headers.put(MESSAGE, messageId);
                }
                try {
                    sent &= nats.publish(subject, headers, part);
                } catch (IllegalArgumentException e) {
                    meters.counter("isthmus_federation_publish_failures", "subject", kindOf(suffix)).increment();
                    LOG.errorf("event=publish_failed subject=%s bytes=%d cause=%s", subject, part.length, e.getMessage());
                    return false;
                }
            }
            if (sent) {
                meters.counter("isthmus_federation_messages_published", "subject", kindOf(suffix)).increment();
                meters.counter("isthmus_federation_bytes_published", "subject", kindOf(suffix)).increment(body.length);
            }
            return sent;
        }
    }

    private long nextSequence() {
        return lastSequence.updateAndGet(last -> Math.max(last + 1, System.currentTimeMillis() * 1000));
    }

    private Headers sign(String subject, long seq, byte[] body) {
        String self = config.cluster().name();
        var headers = new Headers();
        headers.put(MessageAuth.SENDER, self);
        headers.put(MessageAuth.SEQUENCE, Long.toString(seq));
        headers.put(MessageAuth.SIGNATURE, Base64.getEncoder()
                .encodeToString(membership.identity().sign(MessageAuth.signedBytes(subject, self, seq, body))));
        return headers;
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
        if (kind.equals("registry-to") && !(parts.length == 4 && parts[3].equals(config.cluster().name()))) {
            return;
        }
        Consumer<Inbound> handler = handlers.get(kind.equals("registry-to") ? "registry" : kind);
        if (handler == null) {
            return;
        }
        String subjectCluster = PER_CLUSTER.contains(kind) ? (parts.length == 4 ? parts[3] : "") : null;
        Headers h = msg.getHeaders();
        String sender = h == null ? null : h.getFirst(MessageAuth.SENDER);
        if (config.cluster().name().equals(sender)) {
            return;
        }
        byte[] data = msg.getData() == null ? new byte[0] : msg.getData();
        var verdict = auth.check(roster.get(), msg.getSubject(), subjectCluster, sender,
                h == null ? null : h.getFirst(MessageAuth.SEQUENCE), h == null ? null : h.getFirst(MessageAuth.SIGNATURE),
                data, System.currentTimeMillis());
        if (verdict != MessageAuth.Verdict.OK) {
            reject(kind, verdict.label(), msg.getSubject(), sender);
            return;
        }
        boolean gzip = "gzip".equals(h.getFirst(ENCODING));
        String part = h.getFirst(PART);
        if (part != null) {
            try {
                var whole = assembler.add(sender, h.getFirst(MESSAGE), part, data, System.currentTimeMillis());
                if (whole.isEmpty()) {
                    return;
                }
                data = whole.get();
            } catch (PartAssembler.BadPartException e) {
                reject(kind, "malformed", msg.getSubject(), sender + ": " + e.getMessage());
                return;
            }
        }
        meters.counter("isthmus_federation_messages_received", "subject", kind).increment();
        try {
            handler.accept(new Inbound(kind, sender, gzip ? gunzip(data) : data));
        } catch (RuntimeException e) {
            reject(kind, "malformed", msg.getSubject(), sender + ": " + e.getMessage());
        }
    }

    /** Drops messages whose parts stopped arriving. */
    @Scheduled(every = "5s", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void expireParts() {
        for (String key : assembler.expire(System.currentTimeMillis() - 10_000)) {
            reject("parts", "incomplete", key, "parts missing after 10 s");
        }
    }

    static byte[] gzip(byte[] data) {
        var out = new ByteArrayOutputStream(data.length / 4 + 64);
        try (var z = new GZIPOutputStream(out, 64 * 1024)) {
            z.write(data);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    static byte[] gunzip(byte[] data) {
        try (var in = new GZIPInputStream(new ByteArrayInputStream(data), 64 * 1024)) {
            var out = new ByteArrayOutputStream(data.length * 8);
            byte[] buf = new byte[64 * 1024];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
                if (out.size() > MAX_INFLATED) {
                    throw new IllegalArgumentException("compressed body inflates beyond " + MAX_INFLATED + " bytes");
                }
            }
            return out.toByteArray();
        } catch (IOException e) {
            throw new IllegalArgumentException("compressed body is not valid gzip: " + e.getMessage());
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
