package dev.isthmus.api.names;

/** What a controller knows of another cluster of its federation. */
public enum PeerState {
    /** Admitted, first registry sync not finished. */
    JOINING,
    /** Heartbeats arrive; its endpoints are used at their normal priority. */
    ACTIVE,
    /** Taken out on purpose (a drill or maintenance): endpoints leave load balancing elsewhere. */
    DRAINING,
    /** Heartbeats missed: endpoints kept (static stability) at the lowest priority. */
    UNREACHABLE,
    /** Left or evicted. */
    LEFT;

    /** The form used in the REST API and the CLI: {@code Active}, {@code Unreachable}, ... */
    public String display() {
        return name().charAt(0) + name().substring(1).toLowerCase();
    }
}
