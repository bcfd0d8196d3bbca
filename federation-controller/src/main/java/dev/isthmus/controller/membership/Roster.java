package dev.isthmus.controller.membership;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * Who belongs to a federation: one entry per cluster with its public key, when it was admitted and,
 * if it left or was evicted, when. Every member keeps a copy and publishes it, signed; copies merge
 * entry by entry (a later admission wins; for the same admission, having left wins), so they
 * converge whatever order the messages arrive in, and a cluster that left stays out until it is
 * admitted again with a new token.
 *
 * @param federation the federation's name
 * @param members by cluster name
 */
public record Roster(String federation, Map<String, Member> members) {

    public Roster {
        members = Map.copyOf(members);
    }

    /**
     * One cluster of the federation.
     *
     * @param cluster its name
     * @param region its region
     * @param zone its zone
     * @param publicKey its Ed25519 public key (base64 X.509), which signs its messages
     * @param joinedAt when it was admitted (epoch millis); identifies this admission
     * @param admittedBy the member that admitted it (itself for the founder)
     * @param leftAt when it left or was evicted (epoch millis), or null while a member
     * @param leftReason "left" or "evicted by &lt;cluster&gt;", or null
     */
    public record Member(String cluster, String region, String zone, String publicKey, long joinedAt, String admittedBy,
            Long leftAt, String leftReason) {

        public boolean active() {
            return leftAt == null;
        }

        Member left(long at, String reason) {
            return new Member(cluster, region, zone, publicKey, joinedAt, admittedBy, at, reason);
        }

        /** True if this entry should replace {@code held} when merging. */
        boolean supersedes(Member held) {
            if (held == null || joinedAt > held.joinedAt) {
                return true;
            }
            return joinedAt == held.joinedAt && held.active() && !active();
        }
    }

    public static Roster founded(String federation, Member founder) {
        return new Roster(federation, Map.of(founder.cluster(), founder));
    }

    public Optional<Member> member(String cluster) {
        return Optional.ofNullable(members.get(cluster));
    }

    /** True if {@code cluster} is a member now (admitted and not left). */
    public boolean isActive(String cluster) {
        Member m = members.get(cluster);
        return m != null && m.active();
    }

    public List<Member> activeMembers() {
        return new TreeMap<>(members).values().stream().filter(Member::active).toList();
    }

    public Roster with(Member member) {
        var copy = new TreeMap<>(members);
        copy.put(member.cluster(), member);
        return new Roster(federation, copy);
    }

    public Roster withLeft(String cluster, long at, String reason) {
        Member m = members.get(cluster);
        return m == null || !m.active() ? this : with(m.left(at, reason));
    }

    /** The result of {@link #merge}: the merged roster and the entries that changed. */
    public record Merge(Roster roster, List<Member> changed) {
    }

    /** Merges another member's copy into this one; entries of {@code other} that are newer win. */
    public Merge merge(Roster other) {
        var copy = new TreeMap<>(members);
        var changed = new ArrayList<Member>();
        for (Member m : other.members().values()) {
            if (m.supersedes(copy.get(m.cluster()))) {
                copy.put(m.cluster(), m);
                changed.add(m);
            }
        }
        return new Merge(changed.isEmpty() ? this : new Roster(federation, copy), changed);
    }
}
