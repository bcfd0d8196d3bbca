package dev.isthmus.api.nats;

/**
 * A controller's periodic announcement on {@link Subjects#heartbeat}: who it is, where it runs, and a
 * sequence number that increases with every heartbeat of one controller process.
 *
 * @param cluster the sending cluster
 * @param region its region
 * @param zone its zone
 * @param incarnation identifies one run of the controller (changes on restart)
 * @param sequence increases by one per heartbeat within an incarnation
 * @param sentAtMillis the sender's wall clock when sending
 * @param registryGeneration the generation of the sender's registry at that moment (receivers
 *     compare it with the generation they hold to measure how far behind they are)
 * @param registryHash the content hash of that registry (a receiver holding the same generation with
 *     another hash asks for the snapshot: this is the registry's anti-entropy)
 * @param gateway {@code host:port} where other clusters reach the sender's east-west gateway; empty
 *     or absent (older senders) if it has none, and then other clusters cannot route to its endpoints
 * @param policy the commit SHA of the policy bundle the sender runs, empty if none
 * @param drainingUntilMillis while the sender is drained (a drill or maintenance: other clusters
 *     send it no traffic), when the drain ends by the sender's clock; 0 (or absent) when not drained
 */
public record Heartbeat(String cluster, String region, String zone, String incarnation, long sequence, long sentAtMillis,
        long registryGeneration, String registryHash, String gateway, String policy, long drainingUntilMillis) {

    public Heartbeat {
        gateway = gateway == null ? "" : gateway;
        policy = policy == null ? "" : policy;
    }
}
