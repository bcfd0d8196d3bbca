package dev.isthmus.shop.userlogin;

import dev.isthmus.shop.ShopService;
import dev.isthmus.shop.ShopService.Answer;
import java.util.Map;
import java.util.UUID;

/** The shop's login service: {@code POST /login} hands out a session id. */
public final class UserLoginApp {
    public static void main(String[] args) throws Exception {
        ShopService.create("user-login", System.getenv())
                .route("/login", req -> Answer.ok(Map.of("session", UUID.randomUUID().toString())))
                .start();
    }
}
