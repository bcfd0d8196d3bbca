package dev.isthmus.controller.membership;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.isthmus.api.names.ClusterName;
import dev.isthmus.api.names.FederationName;
import dev.isthmus.api.nats.Subjects;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.nats.NatsConnection;
import io.micrometer.core.instrument.MeterRegistry;
import io.nats.client.Message;
import io.quarkus.scheduler.Scheduled;
import jakarta.annotation.PostConstruct;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Event;
import jakarta.inject.Inject;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.jboss.logging.Logger;

/**
 * This cluster's membership in a federation: whether it is in one, the roster, the join tokens it
 * issued, and the join, leave and evict operations. State is kept in
 * {@code <state-dir>/federation.json} (written atomically, owner-only), so a restarted controller
 * is still a member and still refuses a token it saw used.
 *
 * <p>Joining: a member makes a token ({@link #createToken}); the new cluster's controller sends it,
 * with its own public key and a proof that it holds the matching private key, to the issuer over
 * NATS ({@link #join}); the issuer checks the token (signature, expiry, one use, intended cluster,
 * name not taken), adds the cluster to the roster, publishes the roster to the members and answers
 * with the roster signed by its key, which the joiner checks against the key fingerprint the token
 * carries. A cluster that leaves or is evicted is marked so in the roster, which every member
 * republishes; its messages are refused from then on.
 */
@ApplicationScoped
public class Membership {

    private static final Logger LOG = Logger.getLogger(Membership.class);
    private static final SecureRandom RANDOM = new SecureRandom();

    /** This cluster's own state in the federation. */
    public enum SelfState {
        UNFEDERATED, JOINING, ACTIVE;

        public String display() {
            return name().charAt(0) + name().substring(1).toLowerCase();
        }
    }

    /** A token this cluster issued; only its id is kept, never its text. */
    public record IssuedToken(String id, String cluster, long issuedAt, long expiresAt, String usedBy, Long usedAt) {
    }

    /** What {@link #createToken} returns. */
    public record CreatedToken(String token, String id, String federation, String issuer, String cluster, Instant expiresAt) {
    }

    /** Fired when the roster changes; {@code selfLeft} when this cluster left or was evicted. */
    public record MembershipChanged(List<Roster.Member> changed, boolean selfLeft) {
    }

    private record Stored(String federation, Roster roster, Map<String, IssuedToken> tokens) {
    }

    @Inject
    ControllerConfig config;
    @Inject
    ObjectMapper json;
    @Inject
    NatsConnection nats;
    @Inject
    FederationBus bus;
    @Inject
    Event<MembershipChanged> events;
    @Inject
    MeterRegistry meters;

    private final Clock clock = Clock.systemUTC();
    private ClusterIdentity identity;
    private Path stateFile;
    private volatile Roster roster;
    private volatile SelfState selfState = SelfState.UNFEDERATED;
    private final Map<String, IssuedToken> tokens = new LinkedHashMap<>();

    @PostConstruct
    void init() {
        try {
            identity = ClusterIdentity.loadOrCreate(config.stateDir().resolve("identity"));
            stateFile = config.stateDir().resolve("federation.json");
            if (Files.exists(stateFile)) {
                Stored stored = json.readValue(stateFile.toFile(), Stored.class);
                if (stored.roster() != null && stored.roster().isActive(self())) {
                    roster = stored.roster();
                    selfState = SelfState.JOINING;
                    LOG.infof("event=membership_restored federation=%s members=%d", roster.federation(), roster.activeMembers().size());
                }
                if (stored.tokens() != null) {
                    tokens.putAll(stored.tokens());
                }
            } else {
                LOG.infof("event=unfederated cluster=%s hint=\"make a join token here to found federation '%s', or join one with POST /api/v1/federation/join\"",
                        self(), config.federation());
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the membership state in " + config.stateDir() + ": " + e.getMessage()
                    + " (the file is " + stateFile + "; fix or move it away, the cluster then starts unfederated)", e);
        }
    }

    public ClusterIdentity identity() {
        return identity;
    }

    /** The roster, if this cluster is a member of a federation. */
    public Optional<Roster> roster() {
        return Optional.ofNullable(roster);
    }

    public SelfState state() {
        return selfState;
    }

    /** Called when the first registry sync after joining or starting is done. */
    public void markSynced() {
        if (selfState == SelfState.JOINING) {
            selfState = SelfState.ACTIVE;
            LOG.infof("event=self_state state=Active federation=%s", roster == null ? "" : roster.federation());
        }
    }

    private String self() {
        return config.cluster().name();
    }

    private String region() {
        return config.cluster().region().orElse(self());
    }

    private Roster.Member selfMember(long joinedAt, String admittedBy) {
        return new Roster.Member(self(), region(), config.cluster().zone(), identity.publicKey(), joinedAt, admittedBy, null, null);
    }

    // ----- tokens -----

    /** Makes a join token; founds the federation first if this cluster is in none. */
    public synchronized CreatedToken createToken(String forCluster, Duration ttl) throws MembershipException {
        if (forCluster != null) {
            try {
                ClusterName.of(forCluster);
            } catch (IllegalArgumentException e) {
                throw new MembershipException(400, "invalid-request", "The request is not valid", "field 'cluster': " + e.getMessage());
            }
            if (forCluster.equals(self())) {
                throw new MembershipException(400, "invalid-request", "The request is not valid",
                        "field 'cluster': a token for '" + forCluster + "' makes no sense on " + self() + " itself");
            }
        }
        Duration lifetime = ttl == null ? config.membership().tokenTtl() : ttl;
        if (lifetime.isNegative() || lifetime.isZero() || lifetime.compareTo(config.membership().maxTokenTtl()) > 0) {
            throw new MembershipException(400, "invalid-request", "The request is not valid", "field 'ttl': " + lifetime
                    + " is not between 1s and the longest allowed, " + config.membership().maxTokenTtl() + " (isthmus.membership.max-token-ttl)");
        }
        Instant now = clock.instant();
        if (roster == null) {
            FederationName.of(config.federation());
            roster = Roster.founded(config.federation(), selfMember(now.toEpochMilli(), self()));
            selfState = SelfState.ACTIVE;
            LOG.infof("event=federation_founded federation=%s cluster=%s", roster.federation(), self());
            events.fire(new MembershipChanged(roster.activeMembers(), false));
        }
        tokens.values().removeIf(t -> t.expiresAt() < now.minus(Duration.ofDays(1)).getEpochSecond());
        byte[] idBytes = new byte[16];
        RANDOM.nextBytes(idBytes);
        String id = Base64.getUrlEncoder().withoutPadding().encodeToString(idBytes);
        Instant expires = now.plus(lifetime).truncatedTo(java.time.temporal.ChronoUnit.SECONDS);
        var token = new JoinToken(id, roster.federation(), self(), identity.fingerprint(),
                Arrays.stream(config.nats().url().split(",")).map(String::strip).toList(), forCluster,
                now.truncatedTo(java.time.temporal.ChronoUnit.SECONDS), expires);
        tokens.put(id, new IssuedToken(id, forCluster, now.getEpochSecond(), expires.getEpochSecond(), null, null));
        persist();
        meters.counter("isthmus_join_tokens_issued").increment();
        LOG.infof("event=join_token_issued id=%s for=%s expires=%s", id, forCluster == null ? "any" : forCluster, expires);
        return new CreatedToken(token.encode(json, identity), id, roster.federation(), self(), forCluster, expires);
    }

    // ----- joining (the joiner's side) -----

    /** Joins the federation a token names; returns once admitted (state Joining until synced). */
    public Roster join(String tokenText) throws MembershipException {
        JoinToken.Signed signed;
        try {
            signed = JoinToken.parse(tokenText, json);
        } catch (JoinToken.MalformedTokenException e) {
            throw MembershipException.malformedToken(e.getMessage());
        }
        JoinToken token = signed.token();
        Instant now = clock.instant();
        synchronized (this) {
            if (roster != null) {
                throw new MembershipException(409, "already-member", "This cluster is already a member of a federation",
                        self() + " is a member of federation '" + roster.federation() + "'; leave it first with POST /api/v1/federation/leave");
            }
        }
        if (token.expiredAt(now)) {
            throw MembershipException.expiredToken("the token expired at " + token.expiresAt() + " (it is now "
                    + now.truncatedTo(java.time.temporal.ChronoUnit.SECONDS) + "); make a new one on a member with `isthmus token create`");
        }
        if (token.cluster() != null && !token.cluster().equals(self())) {
            throw new MembershipException(403, "wrong-cluster", "The join token is for another cluster",
                    "the token was made for cluster '" + token.cluster() + "', and this is '" + self() + "'");
        }
        if (token.issuer().equals(self())) {
            throw new MembershipException(400, "invalid-request", "The request is not valid",
                    "the token was made by " + self() + " itself; use it on the cluster that should join");
        }
        if (!nats.isConnected()) {
            throw new MembershipException(503, "nats-unavailable", "NATS is not connected",
                    self() + " is not connected to its NATS server (" + config.nats().url() + "); the join goes over NATS to " + token.issuer());
        }
        ObjectNode request = json.createObjectNode();
        request.put("token", tokenText.strip()).put("cluster", self()).put("region", region()).put("zone", config.cluster().zone())
                .put("publicKey", identity.publicKey())
                .put("proof", Base64.getEncoder().encodeToString(identity.sign(tokenText.strip().getBytes(StandardCharsets.UTF_8))));
        String subject = new Subjects(FederationName.of(token.federation())).join(ClusterName.of(token.issuer()));
        String unreachable = "no answer from cluster '" + token.issuer() + "' of federation '" + token.federation() + "' on " + subject
                + " within " + config.membership().joinTimeout().toMillis() + " ms: is it running, and is this cluster's NATS ("
                + config.nats().url() + ") linked to the federation's (" + String.join(",", token.natsUrls()) + ")?";
        Message reply;
        try {
            reply = nats.request(subject, request.toString().getBytes(StandardCharsets.UTF_8), config.membership().joinTimeout());
        } catch (Exception e) {
            throw new MembershipException(504, "issuer-unreachable", "The issuing cluster did not answer", unreachable + " (" + e.getMessage() + ")");
        }
        if (reply == null || reply.getData() == null || reply.getData().length == 0) {
            throw new MembershipException(504, "issuer-unreachable", "The issuing cluster did not answer", unreachable);
        }
        Roster admitted = admittedRoster(token, reply.getData());
        synchronized (this) {
            if (roster != null) {
                throw new MembershipException(409, "already-member", "This cluster is already a member of a federation",
                        self() + " joined federation '" + roster.federation() + "' while this request ran");
            }
            roster = admitted;
            selfState = SelfState.JOINING;
            persist();
        }
        meters.counter("isthmus_federation_joins").increment();
        LOG.infof("event=joined federation=%s issuer=%s members=%d", admitted.federation(), token.issuer(), admitted.activeMembers().size());
        events.fire(new MembershipChanged(admitted.activeMembers(), false));
        return admitted;
    }

    private Roster admittedRoster(JoinToken token, byte[] replyBytes) throws MembershipException {
        JsonNode reply;
        try {
            reply = json.readTree(replyBytes);
        } catch (IOException e) {
            throw new MembershipException(502, "bad-answer", "The issuing cluster's answer cannot be read", e.getMessage());
        }
        int status = reply.path("status").asInt(0);
        if (status != 200) {
            throw new MembershipException(status >= 400 && status < 600 ? status : 502, reply.path("kind").asText("bad-answer"),
                    reply.path("title").asText("The issuing cluster refused the join"),
                    token.issuer() + " refused the join: " + reply.path("detail").asText("(no detail)"));
        }
        String rosterText = reply.path("roster").asText("");
        byte[] signature;
        Roster admitted;
        try {
            signature = Base64.getDecoder().decode(reply.path("signature").asText(""));
            admitted = json.readValue(rosterText, Roster.class);
        } catch (IOException | IllegalArgumentException e) {
            throw new MembershipException(502, "bad-answer", "The issuing cluster's answer cannot be read", e.getMessage());
        }
        var issuer = admitted.member(token.issuer());
        if (issuer.isEmpty() || !ClusterIdentity.fingerprint(issuer.get().publicKey()).equals(token.issuerKey())
                || !ClusterIdentity.verify(issuer.get().publicKey(), rosterText.getBytes(StandardCharsets.UTF_8), signature)) {
            throw new MembershipException(502, "forged-answer", "The answer was not signed by the token's issuer",
                    "the roster received is not signed by the key the token names (" + token.issuerKey() + "); nothing was changed");
        }
        var me = admitted.member(self());
        if (me.isEmpty() || !me.get().active() || !identity.publicKey().equals(me.get().publicKey())
                || !admitted.federation().equals(token.federation())) {
            throw new MembershipException(502, "bad-answer", "The issuing cluster's answer cannot be used",
                    "the roster received does not list " + self() + " with this cluster's key");
        }
        return admitted;
    }

    // ----- joining (the issuer's side) -----

    /** Answers a join request sent to this cluster (called by the bus for {@code join.<self>}). */
    public void handleJoinRequest(Message msg) {
        String[] parts = msg.getSubject().split("\\.");
        if (parts.length != 4 || !parts[3].equals(self()) || msg.getReplyTo() == null) {
            return;
        }
        ObjectNode answer;
        try {
            answer = admit(msg.getData());
        } catch (MembershipException e) {
            meters.counter("isthmus_join_requests_refused", "reason", e.kind()).increment();
            LOG.warnf("event=join_refused reason=%s detail=\"%s\"", e.kind(), e.getMessage());
            answer = json.createObjectNode();
            answer.put("status", e.status()).put("kind", e.kind()).put("title", e.title()).put("detail", e.getMessage());
        }
        nats.reply(msg.getReplyTo(), answer.toString().getBytes(StandardCharsets.UTF_8));
    }

    private synchronized ObjectNode admit(byte[] body) throws MembershipException {
        if (roster == null) {
            throw MembershipException.foreignToken(self() + " is no longer a member of a federation");
        }
        JsonNode request;
        try {
            request = json.readTree(body);
        } catch (IOException e) {
            throw new MembershipException(400, "invalid-request", "The request is not valid", "the join request is not JSON");
        }
        String text = request.path("token").asText("");
        String cluster = request.path("cluster").asText("");
        String publicKey = request.path("publicKey").asText("");
        JoinToken.Signed signed;
        try {
            signed = JoinToken.parse(text, json);
        } catch (JoinToken.MalformedTokenException e) {
            throw MembershipException.malformedToken(e.getMessage());
        }
        JoinToken token = signed.token();
        if (!token.federation().equals(roster.federation()) || !token.issuer().equals(self()) || !signed.verifiedBy(identity.publicKey())) {
            throw MembershipException.foreignToken("the token's signature does not verify with the key of " + self()
                    + " in federation '" + roster.federation() + "': it was made by another federation, or altered");
        }
        IssuedToken issued = tokens.get(token.id());
        if (issued == null) {
            throw MembershipException.foreignToken("token " + token.id() + " is not one " + self() + " issued (or its record was removed)");
        }
        Instant now = clock.instant();
        try {
            ClusterName.of(cluster);
        } catch (IllegalArgumentException e) {
            throw new MembershipException(400, "invalid-request", "The request is not valid", "the joining cluster's name: " + e.getMessage());
        }
        if (issued.usedBy() != null) {
            var m = roster.member(issued.usedBy());
            if (issued.usedBy().equals(cluster) && m.isPresent() && m.get().active() && m.get().publicKey().equals(publicKey)) {
                return admittedAnswer(); // the same cluster asking again (its first answer was lost)
            }
            throw MembershipException.reusedToken("token " + token.id() + " was already used by cluster '" + issued.usedBy() + "' at "
                    + Instant.ofEpochSecond(issued.usedAt()) + "; a token works once: make a new one with `isthmus token create`");
        }
        if (token.expiredAt(now)) {
            throw MembershipException.expiredToken("the token expired at " + token.expiresAt() + "; make a new one with `isthmus token create`");
        }
        if (token.cluster() != null && !token.cluster().equals(cluster)) {
            throw new MembershipException(403, "wrong-cluster", "The join token is for another cluster",
                    "the token was made for cluster '" + token.cluster() + "', not '" + cluster + "'");
        }
        byte[] proof;
        try {
            proof = Base64.getDecoder().decode(request.path("proof").asText(""));
        } catch (IllegalArgumentException e) {
            proof = new byte[0];
        }
        if (!ClusterIdentity.verify(publicKey, text.strip().getBytes(StandardCharsets.UTF_8), proof)) {
            throw new MembershipException(400, "bad-proof", "The joining cluster did not prove its key",
                    "the join request's proof does not verify with the public key it carries");
        }
        if (roster.isActive(cluster)) {
            var m = roster.member(cluster).get();
            throw new MembershipException(409, "duplicate-cluster", "A cluster of that name is already a member",
                    "a cluster named '" + cluster + "' is already a member of '" + roster.federation() + "' (admitted "
                            + Instant.ofEpochMilli(m.joinedAt()) + " by " + m.admittedBy() + "); give the new cluster another name, "
                            + "or evict the old one first with DELETE /api/v1/clusters/" + cluster);
        }
        var member = new Roster.Member(cluster, textOr(request, "region", cluster), textOr(request, "zone", "zone-a"), publicKey,
                now.toEpochMilli(), self(), null, null);
        roster = roster.with(member);
        tokens.put(issued.id(), new IssuedToken(issued.id(), issued.cluster(), issued.issuedAt(), issued.expiresAt(), cluster,
                now.getEpochSecond()));
        persist();
        LOG.infof("event=cluster_admitted cluster=%s federation=%s token=%s", cluster, roster.federation(), issued.id());
        events.fire(new MembershipChanged(List.of(member), false));
        publishRoster();
        return admittedAnswer();
    }

    private static String textOr(JsonNode node, String field, String fallback) {
        String v = node.path(field).asText("");
        return v.isEmpty() ? fallback : v;
    }

    private ObjectNode admittedAnswer() {
        String text = rosterJson(roster);
        var answer = json.createObjectNode();
        answer.put("status", 200).put("roster", text)
                .put("signature", Base64.getEncoder().encodeToString(identity.sign(text.getBytes(StandardCharsets.UTF_8))));
        return answer;
    }

    // ----- leaving and evicting -----

    /** Leaves the federation: tells the members, then forgets it; the cluster is unfederated after. */
    public synchronized Roster leave() throws MembershipException {
        if (roster == null) {
            throw MembershipException.notMember(self() + " is not a member of a federation; nothing to leave");
        }
        Roster before = roster;
        Roster leaving = roster.withLeft(self(), clock.millis(), "left");
        roster = leaving;
        publishRoster();
        becomeUnfederated("left");
        return before;
    }

    /** Evicts another cluster: marks it left in the roster and tells the members. */
    public synchronized Roster.Member evict(String cluster) throws MembershipException {
        if (roster == null) {
            throw MembershipException.notMember(self() + " is not a member of a federation; there is no one to evict");
        }
        if (cluster.equals(self())) {
            throw new MembershipException(409, "evict-self", "A cluster cannot evict itself",
                    "to take " + self() + " out of the federation, POST /api/v1/federation/leave");
        }
        var member = roster.member(cluster).orElseThrow(() -> new MembershipException(404, "unknown-cluster", "No such cluster",
                "cluster '" + cluster + "' is not a member of federation '" + roster.federation() + "'; GET /api/v1/clusters lists the members"));
        if (!member.active()) {
            throw new MembershipException(409, "already-left", "The cluster is no longer a member",
                    "cluster '" + cluster + "' already left (" + member.leftReason() + " at " + Instant.ofEpochMilli(member.leftAt()) + ")");
        }
        roster = roster.withLeft(cluster, clock.millis(), "evicted by " + self());
        persist();
        var evicted = roster.member(cluster).get();
        LOG.warnf("event=cluster_evicted cluster=%s by=%s", cluster, self());
        events.fire(new MembershipChanged(List.of(evicted), false));
        publishRoster();
        return evicted;
    }

    private void becomeUnfederated(String why) {
        String federation = roster == null ? "" : roster.federation();
        roster = null;
        selfState = SelfState.UNFEDERATED;
        tokens.clear();
        persist();
        LOG.warnf("event=unfederated federation=%s reason=%s", federation, why);
        events.fire(new MembershipChanged(List.of(), true));
    }

    // ----- the roster on the bus -----

    /** Merges a member's roster (called by the bus with a verified message). */
    public void onRoster(FederationBus.Inbound msg) {
        Roster other;
        try {
            other = json.readValue(msg.data(), Roster.class);
        } catch (IOException e) {
            throw new IllegalArgumentException("roster is not valid JSON: " + e.getMessage());
        }
        List<Roster.Member> changed;
        boolean evicted = false;
        synchronized (this) {
            if (roster == null || !other.federation().equals(roster.federation())) {
                return;
            }
            var mine = roster.member(self()).orElseThrow();
            var filtered = new LinkedHashMap<>(other.members());
            var claimedSelf = filtered.remove(self());
            if (claimedSelf != null && claimedSelf.joinedAt() == mine.joinedAt() && !claimedSelf.active()) {
                evicted = true;
            }
            var merge = roster.merge(new Roster(other.federation(), filtered));
            changed = merge.changed();
            if (!changed.isEmpty()) {
                roster = merge.roster();
                persist();
            }
        }
        if (evicted) {
            LOG.warnf("event=evicted by=%s", msg.sender());
            synchronized (this) {
                becomeUnfederated("evicted (roster from " + msg.sender() + ")");
            }
            return;
        }
        if (!changed.isEmpty()) {
            for (var m : changed) {
                LOG.infof("event=roster_changed cluster=%s state=%s from=%s", m.cluster(), m.active() ? "member" : m.leftReason(), msg.sender());
                if (!m.active()) {
                    bus.forget(m.cluster());
                }
            }
            events.fire(new MembershipChanged(changed, false));
        }
    }

    @Scheduled(every = "${isthmus.membership.roster-republish-interval:10s}", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void republishRoster() {
        if (roster != null) {
            publishRoster();
        }
    }

    private void publishRoster() {
        Roster r = roster;
        if (r != null) {
            bus.publish("membership", rosterJson(r).getBytes(StandardCharsets.UTF_8));
        }
    }

    private String rosterJson(Roster r) {
        try {
            return json.writeValueAsString(r);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private void persist() {
        try {
            Files.createDirectories(stateFile.getParent());
            Path tmp = stateFile.resolveSibling("federation.json.tmp");
            Files.deleteIfExists(tmp);
            Files.createFile(tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            json.writeValue(tmp.toFile(), new Stored(roster == null ? null : roster.federation(), roster, new LinkedHashMap<>(tokens)));
            Files.move(tmp, stateFile, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            LOG.errorf("event=membership_not_saved file=%s cause=%s", stateFile, e.getMessage());
        }
    }

    /** Active members other than this cluster. */
    public List<Roster.Member> peers() {
        Roster r = roster;
        if (r == null) {
            return List.of();
        }
        var out = new ArrayList<Roster.Member>();
        for (var m : r.members().values()) {
            if (!m.cluster().equals(self())) {
                out.add(m);
            }
        }
        out.sort(java.util.Comparator.comparing(Roster.Member::cluster));
        return out;
    }
}
