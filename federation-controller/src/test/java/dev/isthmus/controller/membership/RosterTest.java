package dev.isthmus.controller.membership;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class RosterTest {

    static Roster.Member member(String name, long joinedAt) {
        return new Roster.Member(name, name, "a", "key-" + name + "-" + joinedAt, joinedAt, "us-east", null, null);
    }

    @Test
    void copiesConvergeWhateverOrderTheyMergeIn() {
        Roster base = Roster.founded("acme", member("us-east", 1));
        Roster a = base.with(member("eu-west", 2));
        Roster b = base.with(member("ap-south", 3)).withLeft("us-east", 9, "left");
        Roster ab = a.merge(b).roster();
        Roster ba = b.merge(a).roster();
        assertEquals(ab, ba);
        assertTrue(ab.isActive("eu-west"));
        assertTrue(ab.isActive("ap-south"));
        assertFalse(ab.isActive("us-east"), "having left wins over the same admission");
    }

    @Test
    void aLaterAdmissionWinsOverAnOldDeparture() {
        Roster left = Roster.founded("acme", member("us-east", 1)).with(member("eu-west", 2)).withLeft("eu-west", 5, "evicted by us-east");
        Roster rejoined = Roster.founded("acme", member("us-east", 1)).with(member("eu-west", 7));
        var merge = left.merge(rejoined);
        assertTrue(merge.roster().isActive("eu-west"));
        assertEquals(1, merge.changed().size());
        assertTrue(rejoined.merge(left).changed().isEmpty(), "the old departure does not undo the new admission");
    }

    @Test
    void mergingTheSameCopyChangesNothing() {
        Roster r = Roster.founded("acme", member("us-east", 1)).with(member("eu-west", 2));
        assertTrue(r.merge(r).changed().isEmpty());
    }
}
