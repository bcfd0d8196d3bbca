package dev.isthmus.controller.membership;

/**
 * A membership request refused, with what the REST API answers: the HTTP status, the problem kind
 * (the last segment of its type URI), a title and a detail a person can act on.
 */
public final class MembershipException extends Exception {

    private final int status;
    private final String kind;
    private final String title;

    public MembershipException(int status, String kind, String title, String detail) {
        super(detail);
        this.status = status;
        this.kind = kind;
        this.title = title;
    }

    public int status() {
        return status;
    }

    public String kind() {
        return kind;
    }

    public String title() {
        return title;
    }

    public static MembershipException malformedToken(String detail) {
        return new MembershipException(400, "malformed-token", "The join token cannot be read", detail);
    }

    public static MembershipException expiredToken(String detail) {
        return new MembershipException(410, "expired-token", "The join token has expired", detail);
    }

    public static MembershipException reusedToken(String detail) {
        return new MembershipException(409, "reused-token", "The join token was already used", detail);
    }

    public static MembershipException foreignToken(String detail) {
        return new MembershipException(403, "foreign-token", "The join token was not issued by this federation", detail);
    }

    public static MembershipException notMember(String detail) {
        return new MembershipException(409, "not-a-member", "This cluster is not a member of a federation", detail);
    }
}
