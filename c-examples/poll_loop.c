/*
 * poll_loop: a chordsip node driven from the host's own event loop.
 *
 * The node uses fd delivery (CHORDSIP_DELIVER_FD): completions, membership
 * events and log lines wait in a queue, the node's event fd becomes
 * readable, and chordsip_node_process() runs the callbacks on this thread -
 * the way a single-threaded server (an event loop, PJSIP's ioqueue, ...)
 * integrates the library. A timerfd in the same poll() set paces the work:
 * every tick starts one chain put -> get -> lookup, each step issued from the
 * previous step's completion callback.
 *
 *   poll_loop [-j bootstrap] [-n chains] [-o name=value]...
 *
 * Without -j it starts a new ring and, on the first tick, a second node in
 * the same process joins it, so that membership events show up.
 * Exit status 0 when every operation succeeded (and, with the in-process
 * peer, membership events arrived). -o sets any node option of both nodes
 * (chordsip_config_set), e.g. -o op_timeout_ms=20000.
 */
#include <chordsip.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

struct app {
    chordsip_node *node;
    int chains_started, chains_done, chains_wanted;
    int failures;
    int membership_events;
};

/* One put -> get -> lookup chain; freed by its last callback. */
struct chain {
    struct app *app;
    char key[64];
    char value[64];
};

static void chain_end(struct chain *c, const char *step, chordsip_result rc) {
    if (rc != CHORDSIP_OK) {
        printf("  %s %s failed: %s\n", step, c->key, chordsip_result_str(rc));
        c->app->failures++;
    }
    c->app->chains_done++;
    free(c);
}

static void on_lookup(chordsip_result rc, const chordsip_lookup_info *info, void *ud) {
    struct chain *c = ud;
    if (rc == CHORDSIP_OK)
        printf("  lookup %s -> %s (%u hops, %llu us)\n", c->key, info->node.addr, info->hops,
               (unsigned long long)info->latency_us);
    chain_end(c, "lookup", rc);
}

static void on_get(chordsip_result rc, const chordsip_values *values, void *ud) {
    struct chain *c = ud;
    if (rc != CHORDSIP_OK) {
        chain_end(c, "get", rc);
        return;
    }
    /* values is lent for this call only: read it here, never free it */
    int found = 0;
    for (size_t i = 0; i < chordsip_values_len(values); i++) {
        chordsip_value v;
        if (chordsip_values_get(values, i, &v) == CHORDSIP_OK && v.data_len == strlen(c->value) &&
            memcmp(v.data, c->value, v.data_len) == 0)
            found = 1;
    }
    printf("  get %s -> %zu value(s)%s\n", c->key, chordsip_values_len(values),
           found ? ", ours included" : ", ours MISSING");
    if (!found)
        c->app->failures++;
    /* Next step straight from the callback: async calls are always allowed. */
    rc = chordsip_node_lookup_async(c->app->node, c->key, 0, on_lookup, c);
    if (rc != CHORDSIP_OK)
        chain_end(c, "lookup", rc);
}

static void on_put(chordsip_result rc, uint32_t copies, void *ud) {
    struct chain *c = ud;
    if (rc != CHORDSIP_OK) {
        chain_end(c, "put", rc);
        return;
    }
    printf("  put %s -> ok, %u cop%s\n", c->key, copies, copies == 1 ? "y" : "ies");
    rc = chordsip_node_get_async(c->app->node, c->key, on_get, c);
    if (rc != CHORDSIP_OK)
        chain_end(c, "get", rc);
}

static void start_chain(struct app *app) {
    struct chain *c = calloc(1, sizeof *c);
    if (c == NULL) {
        app->failures++;
        return;
    }
    c->app = app;
    snprintf(c->key, sizeof c->key, "sip:user%d@example.com", app->chains_started);
    snprintf(c->value, sizeof c->value, "<sip:user%d@192.0.2.1:5060>", app->chains_started);
    app->chains_started++;
    chordsip_result rc = chordsip_node_put_async(app->node, c->key, "poll-loop",
                                                 (const uint8_t *)c->value, strlen(c->value),
                                                 300, on_put, c);
    if (rc != CHORDSIP_OK) /* the callback will never run */
        chain_end(c, "put", rc);
}

static void on_event(const chordsip_event *e, void *ud) {
    struct app *app = ud;
    switch (e->kind) {
    case CHORDSIP_EVENT_PREDECESSOR:
    case CHORDSIP_EVENT_SUCCESSOR:
        app->membership_events++;
        printf("  event: %s is now %s\n",
               e->kind == CHORDSIP_EVENT_PREDECESSOR ? "predecessor" : "successor",
               e->has_peer ? e->peer.addr : "(none)");
        break;
    case CHORDSIP_EVENT_KEYS_IN:
        printf("  event: %llu entries moved in\n", (unsigned long long)e->count);
        break;
    case CHORDSIP_EVENT_KEYS_OUT:
        printf("  event: %llu entries handed away\n", (unsigned long long)e->count);
        break;
    case CHORDSIP_EVENT_MEMBER_UP:
    case CHORDSIP_EVENT_MEMBER_DOWN: /* one-hop overlays only */
        printf("  event: member %s %s\n", e->peer.addr,
               e->kind == CHORDSIP_EVENT_MEMBER_UP ? "up" : "down");
        break;
    default: /* kinds added by later versions */
        break;
    }
}

/* Applies a `-o name=value` option (chordsip_config_set); 0 on success. */
static int set_option(chordsip_config *cfg, const char *prog, const char *option) {
    char name[64], err[256] = "";
    const char *eq = strchr(option, '=');
    if (eq == NULL || (size_t)(eq - option) >= sizeof name) {
        fprintf(stderr, "%s: -o %s: want name=value\n", prog, option);
        return -1;
    }
    memcpy(name, option, (size_t)(eq - option));
    name[eq - option] = 0;
    if (chordsip_config_set(cfg, name, eq + 1, err, sizeof err) != CHORDSIP_OK) {
        fprintf(stderr, "%s: -o %s: %s\n", prog, option, err);
        return -1;
    }
    return 0;
}

static void on_log(uint32_t level, const char *msg, void *ud) {
    (void)ud;
    printf("  log[%u]: %s\n", level, msg);
}

int main(int argc, char **argv) {
    const char *bootstrap = NULL;
    const char *options[16];
    int chains = 5, n_options = 0, opt;
    while ((opt = getopt(argc, argv, "j:n:o:h")) != -1) {
        switch (opt) {
        case 'j': bootstrap = optarg; break;
        case 'n': chains = atoi(optarg); break;
        case 'o':
            if (n_options == 16) {
                fprintf(stderr, "%s: at most 16 -o options\n", argv[0]);
                return 2;
            }
            options[n_options++] = optarg;
            break;
        default:
            fprintf(stderr, "usage: %s [-j bootstrap] [-n chains] [-o name=value]...\n",
                    argv[0]);
            return opt == 'h' ? 0 : 2;
        }
    }
    struct app app = {.chains_wanted = chains};

    chordsip_config *cfg = NULL;
    if (chordsip_config_new(&cfg) != CHORDSIP_OK)
        return 1;
    for (int i = 0; i < n_options; i++)
        if (set_option(cfg, "poll_loop", options[i]) != 0) {
            chordsip_config_free(cfg);
            return 2;
        }
    chordsip_config_set_delivery(cfg, CHORDSIP_DELIVER_FD);
    chordsip_config_set_event_callback(cfg, on_event, &app);
    chordsip_config_set_log_callback(cfg, 3 /* info */, on_log, NULL);
    char err[256] = "";
    chordsip_result rc = chordsip_node_new(cfg, &app.node, err, sizeof err);
    chordsip_config_free(cfg);
    if (rc != CHORDSIP_OK) {
        fprintf(stderr, "poll_loop: %s: %s\n", chordsip_result_str(rc), err);
        return 1;
    }
    int event_fd = -1;
    chordsip_node_event_fd(app.node, &event_fd); /* owned by the node: never close it */

    /* Joining blocks; what happens meanwhile waits in the queue. */
    if ((rc = chordsip_node_join(app.node, bootstrap)) != CHORDSIP_OK) {
        fprintf(stderr, "poll_loop: join: %s\n", chordsip_result_str(rc));
        chordsip_node_free(app.node);
        return 1;
    }
    char addr[64] = "";
    chordsip_node_addr(app.node, addr, sizeof addr);
    printf("node %s in fd mode, event fd %d\n", addr, event_fd);

    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec every = {{0, 200 * 1000000L}, {0, 200 * 1000000L}};
    if (timer < 0 || timerfd_settime(timer, 0, &every, NULL) != 0) {
        perror("timerfd");
        chordsip_node_free(app.node);
        return 1;
    }

    chordsip_node *peer = NULL; /* the in-process second node, without -j */
    int ticks = 0, status = 0;
    while (app.chains_done < app.chains_wanted) {
        struct pollfd fds[2] = {{.fd = event_fd, .events = POLLIN},
                                {.fd = timer, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("poll");
            status = 1;
            break;
        }
        if (fds[0].revents & POLLIN) {
            size_t ran = 0;
            chordsip_node_process(app.node, &ran); /* callbacks run here, on this thread */
        }
        if (fds[1].revents & POLLIN) {
            uint64_t expirations;
            if (read(timer, &expirations, sizeof expirations) < 0)
                continue;
            ticks++;
            if (ticks == 1 && bootstrap == NULL) {
                chordsip_config *pc = NULL;
                chordsip_config_new(&pc);
                for (int i = 0; i < n_options; i++)
                    set_option(pc, "poll_loop", options[i]); /* checked above */
                if (chordsip_node_new(pc, &peer, NULL, 0) == CHORDSIP_OK &&
                    chordsip_node_join(peer, addr) == CHORDSIP_OK)
                    printf("tick 1: a second node joined through %s\n", addr);
                else
                    app.failures++;
                chordsip_config_free(pc);
            } else if (app.chains_started < app.chains_wanted) {
                printf("tick %d: starting chain %d\n", ticks, app.chains_started);
                start_chain(&app);
            }
            if (ticks > 100) { /* 20 s: something is stuck */
                fprintf(stderr, "poll_loop: operations did not complete\n");
                status = 1;
                break;
            }
        }
    }
    close(timer);

    /* Leave gracefully, then process the queue once more for the last events. */
    if (peer != NULL) {
        chordsip_node_leave(peer, 2000);
        chordsip_node_free(peer);
    }
    rc = chordsip_node_leave(app.node, 2000);
    if (rc != CHORDSIP_OK) {
        fprintf(stderr, "poll_loop: leave: %s\n", chordsip_result_str(rc));
        status = 1;
    }
    chordsip_node_process(app.node, NULL);
    chordsip_node_free(app.node); /* pending completions, if any, run here */

    printf("%d chains done, %d failures, %d membership events\n", app.chains_done, app.failures,
           app.membership_events);
    if (app.failures > 0 || (bootstrap == NULL && app.membership_events == 0))
        status = 1;
    return status;
}
