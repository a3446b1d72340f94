CREATE TABLE negotiation_sessions (
    id             bigserial PRIMARY KEY,
    user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    deal_id        bigint NOT NULL REFERENCES deals (id) ON DELETE CASCADE,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'completed', 'cancelled')),
    current_round  integer NOT NULL DEFAULT 1,
    max_rounds     integer NOT NULL DEFAULT 10,
    target_price   numeric(12, 2),
    dealer_offer   numeric(12, 2) NOT NULL,
    agreed_price   numeric(12, 2),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    ended_at       timestamptz
);
CREATE INDEX ix_negotiation_sessions_user_id ON negotiation_sessions (user_id);
CREATE INDEX ix_negotiation_sessions_status ON negotiation_sessions (status);

CREATE TABLE negotiation_messages (
    id           bigserial PRIMARY KEY,
    session_id   bigint NOT NULL REFERENCES negotiation_sessions (id) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('user', 'agent', 'dealer_sim')),
    content      text NOT NULL,
    round_number integer NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_negotiation_messages_session_id ON negotiation_messages (session_id, id);
