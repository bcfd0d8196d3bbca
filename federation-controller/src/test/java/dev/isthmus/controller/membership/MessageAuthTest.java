package dev.isthmus.controller.membership;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.isthmus.controller.membership.MessageAuth.Verdict;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Base64;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MessageAuthTest {

    @TempDir
    Path dir;
    ClusterIdentity east;
    ClusterIdentity rogue;
    Roster roster;
    final MessageAuth auth = new MessageAuth();
    final byte[] body = "{\"cluster\":\"us-east\"}".getBytes(StandardCharsets.UTF_8);
    static final String SUBJECT = "isthmus.acme.registry.us-east";

    @BeforeEach
    void setUp() throws Exception {
        east = ClusterIdentity.loadOrCreate(dir.resolve("east"));
        rogue = ClusterIdentity.loadOrCreate(dir.resolve("rogue"));
        roster = Roster.founded("acme", new Roster.Member("us-east", "us-east", "a", east.publicKey(), 1, "us-east", null, null))
                .with(new Roster.Member("gone", "gone", "a", rogue.publicKey(), 1, "us-east", 5L, "left"));
    }

    private String sig(ClusterIdentity who, String subject, String sender, long seq, byte[] data) {
        return Base64.getEncoder().encodeToString(who.sign(MessageAuth.signedBytes(subject, sender, seq, data)));
    }

    @Test
    void acceptsASignedMessageOnceAndRefusesItsReplay() {
        long now = System.currentTimeMillis();
        long seq = now * 1000;
        String s = sig(east, SUBJECT, "us-east", seq, body);
        assertEquals(Verdict.OK, auth.check(roster, SUBJECT, "us-east", "us-east", Long.toString(seq), s, body, now));
        assertEquals(Verdict.REPLAY, auth.check(roster, SUBJECT, "us-east", "us-east", Long.toString(seq), s, body, now));
        long next = seq + 1;
        assertEquals(Verdict.OK, auth.check(roster, SUBJECT, "us-east", "us-east", Long.toString(next), sig(east, SUBJECT, "us-east", next, body), body, now));
    }

    @Test
    void refusesForgeriesOfEveryKind() {
        long now = System.currentTimeMillis();
        long seq = now * 1000;
        assertEquals(Verdict.UNSIGNED, auth.check(roster, SUBJECT, "us-east", null, null, null, body, now));
        assertEquals(Verdict.BAD_SIGNATURE, auth.check(roster, SUBJECT, "us-east", "us-east", Long.toString(seq),
                sig(rogue, SUBJECT, "us-east", seq, body), body, now));
        byte[] altered = "{\"cluster\":\"us-east\",\"x\":1}".getBytes(StandardCharsets.UTF_8);
        assertEquals(Verdict.BAD_SIGNATURE, auth.check(roster, SUBJECT, "us-east", "us-east", Long.toString(seq),
                sig(east, SUBJECT, "us-east", seq, body), altered, now));
        assertEquals(Verdict.BAD_SIGNATURE, auth.check(roster, "isthmus.acme.registry.other", null, "us-east", Long.toString(seq),
                sig(east, SUBJECT, "us-east", seq, body), body, now), "signature binds the subject");
        assertEquals(Verdict.UNKNOWN_SENDER, auth.check(roster, SUBJECT, null, "stranger", Long.toString(seq), "AAAA", body, now));
        assertEquals(Verdict.NOT_A_MEMBER, auth.check(roster, SUBJECT, null, "gone", Long.toString(seq),
                sig(rogue, SUBJECT, "gone", seq, body), body, now));
        assertEquals(Verdict.SENDER_MISMATCH, auth.check(roster, SUBJECT, "eu-west", "us-east", Long.toString(seq),
                sig(east, SUBJECT, "us-east", seq, body), body, now));
        long old = (now - MessageAuth.WINDOW_MILLIS - 1000) * 1000;
        assertEquals(Verdict.OUTSIDE_WINDOW, auth.check(roster, SUBJECT, "us-east", "us-east", Long.toString(old),
                sig(east, SUBJECT, "us-east", old, body), body, now));
        assertEquals(Verdict.BAD_SIGNATURE, auth.check(roster, SUBJECT, "us-east", "us-east", "12x", "AAAA", body, now));
    }
}
