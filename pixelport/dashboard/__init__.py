"""The dashboard (`/dashboard`): server-rendered pages over the accounts API and library."""
