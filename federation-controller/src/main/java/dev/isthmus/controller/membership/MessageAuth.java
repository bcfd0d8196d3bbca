package dev.isthmus.controller.membership;

import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Checks that a message on the federation's bus comes from a member: the sender named in its
 * headers is an active member of the roster, the Ed25519 signature over subject, sender, sequence
 * and body verifies with that member's key, and the sequence is newer than the last accepted one
 * from that sender on that subject (so a recorded message replayed later is refused; subjects are
 * tracked apart because each is handled by its own thread, in order) and within
 * {@link #WINDOW_MILLIS} of this clock (so a replay after a restart is refused too).
 *
 * <p>Sequences are the sender's wall clock in microseconds, forced to increase, so they keep
 * increasing across the sender's restarts.
 */
public final class MessageAuth {

    public static final String SENDER = "Isthmus-Sender";
    public static final String SEQUENCE = "Isthmus-Seq";
    public static final String SIGNATURE = "Isthmus-Signature";
    /** How far a sequence may be from this clock, either way. */
    public static final long WINDOW_MILLIS = 300_000;

    /** Why a message was refused; {@code OK} if it was not. The metric label is {@link #label()}. */
    public enum Verdict {
        OK, UNSIGNED, UNKNOWN_SENDER, NOT_A_MEMBER, SENDER_MISMATCH, BAD_SIGNATURE, REPLAY, OUTSIDE_WINDOW;

        public String label() {
            return name().toLowerCase();
        }
    }

    private final ConcurrentHashMap<String, Long> lastSequence = new ConcurrentHashMap<>();

    /** The bytes a sender signs. */
    public static byte[] signedBytes(String subject, String sender, long sequence, byte[] body) {
        byte[] head = (subject + "\n" + sender + "\n" + sequence + "\n").getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[head.length + body.length];
        System.arraycopy(head, 0, out, 0, head.length);
        System.arraycopy(body, 0, out, head.length, body.length);
        return out;
    }

    /**
     * @param subjectCluster the cluster the subject names (registry.X, heartbeat.X), or null if the
     *     subject names none; it must be the sender
     */
    public Verdict check(Roster roster, String subject, String subjectCluster, String sender, String sequenceText,
            String signatureBase64, byte[] body, long nowMillis) {
        if (sender == null || sequenceText == null || signatureBase64 == null) {
            return Verdict.UNSIGNED;
        }
        var member = roster.member(sender);
        if (member.isEmpty()) {
            return Verdict.UNKNOWN_SENDER;
        }
        if (!member.get().active()) {
            return Verdict.NOT_A_MEMBER;
        }
        if (subjectCluster != null && !subjectCluster.equals(sender)) {
            return Verdict.SENDER_MISMATCH;
        }
        long sequence;
        byte[] signature;
        try {
            sequence = Long.parseLong(sequenceText);
            signature = Base64.getDecoder().decode(signatureBase64);
        } catch (IllegalArgumentException e) {
            return Verdict.BAD_SIGNATURE;
        }
        if (!ClusterIdentity.verify(member.get().publicKey(), signedBytes(subject, sender, sequence, body), signature)) {
            return Verdict.BAD_SIGNATURE;
        }
        if (Math.abs(sequence / 1000 - nowMillis) > WINDOW_MILLIS) {
            return Verdict.OUTSIDE_WINDOW;
        }
        var accepted = new boolean[1];
        lastSequence.compute(sender + "\n" + subject, (k, last) -> {
            if (last != null && sequence <= last) {
                return last;
            }
            accepted[0] = true;
            return sequence;
        });
        return accepted[0] ? Verdict.OK : Verdict.REPLAY;
    }

    /** Forgets what was seen from a sender (it left; a new admission starts afresh). */
    public void forget(String sender) {
        lastSequence.keySet().removeIf(k -> k.startsWith(sender + "\n"));
    }
}
