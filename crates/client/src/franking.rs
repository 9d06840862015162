//! Message franking for the three roles: sender, delivery service, receiver.
