CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    email           text NOT NULL,
    username        text NOT NULL,
    full_name       text,
    hashed_password text NOT NULL,
    is_active       boolean NOT NULL DEFAULT true,
    is_superuser    boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Emails and usernames are unique regardless of case.
CREATE UNIQUE INDEX ux_users_email ON users (lower(email));
CREATE UNIQUE INDEX ux_users_username ON users (lower(username));

CREATE TABLE deals (
    id              bigserial PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    customer_name   text NOT NULL,
    customer_email  text NOT NULL,
    vehicle_make    text NOT NULL,
    vehicle_model   text NOT NULL,
    vehicle_year    integer NOT NULL,
    vehicle_mileage integer NOT NULL DEFAULT 0 CHECK (vehicle_mileage >= 0),
    vehicle_vin     text,
    asking_price    numeric(12, 2) NOT NULL CHECK (asking_price > 0),
    offer_price     numeric(12, 2) CHECK (offer_price > 0),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'in_progress', 'completed', 'cancelled')),
    notes           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_deals_user_id_created_at ON deals (user_id, created_at DESC);
CREATE INDEX ix_deals_customer_email ON deals (customer_email);
CREATE INDEX ix_deals_status_created_at ON deals (status, created_at);
