import { Type } from '@fastify/type-provider-typebox';
import { METADATA_KEY_PATTERN, METADATA_LIMITS, OTP_ID_PATTERN } from '@otp-gateway/core';

/** Request and response schemas: declared once, they drive validation, types and the OpenAPI document. */

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'stable snake_case code' }),
      message: Type.String(),
    }),
    id: Type.Optional(Type.String()),
    status: Type.Optional(Type.String()),
    attemptsRemaining: Type.Optional(Type.Integer()),
  },
  { $id: 'ErrorBody', description: 'Every error answer' },
);

const OTP_ID_EXAMPLE = 'otp_0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const OtpId = Type.String({ pattern: OTP_ID_PATTERN.source, description: 'OTP id', examples: [OTP_ID_EXAMPLE] });
const Phone = Type.String({
  minLength: 3,
  maxLength: 32,
  description: 'E.164 phone number',
  examples: ['+33612345678'],
});
const Status = Type.Union(
  ['pending', 'approved', 'expired', 'locked', 'failed'].map((s) => Type.Literal(s)),
  { description: 'the verification status' },
);
const DeliveryStatus = Type.Union(
  ['queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed'].map((s) => Type.Literal(s)),
  { description: 'the SMS delivery status' },
);

const Metadata = Type.Record(
  Type.String({ pattern: METADATA_KEY_PATTERN }),
  Type.String({ maxLength: METADATA_LIMITS.maxValueLength }),
  {
    maxProperties: METADATA_LIMITS.maxPairs,
    additionalProperties: false,
    description: `correlation pairs kept with the OTP, returned by GET and carried in every status webhook (up to ${METADATA_LIMITS.maxPairs}; keys 1-40 of A-Za-z0-9_.:-, values up to ${METADATA_LIMITS.maxValueLength} characters)`,
    examples: [{ userId: 'u_123', flow: 'signup' }],
  },
);

export const SendBody = Type.Object(
  {
    phoneNumber: Phone,
    metadata: Type.Optional(Metadata),
    locale: Type.Optional(
      Type.String({
        pattern: '^[a-z]{2}(-[A-Z]{2})?$',
        description: 'message language, e.g. en or fr-FR',
        examples: ['fr'],
      }),
    ),
  },
  { additionalProperties: false },
);

export const SendHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 128,
      pattern: '^[\\x21-\\x7E]+$',
      description: 'repeat-safe request key (24 h)',
    }),
  ),
});

export const SendReply = Type.Object({
  id: OtpId,
  status: Type.Literal('pending'),
  deliveryStatus: Type.Literal('queued'),
  phoneNumber: Phone,
  expiresAt: Type.String({ format: 'date-time' }),
});

export const VerifyBody = Type.Object(
  {
    id: Type.Optional(OtpId),
    phoneNumber: Type.Optional(Phone),
    code: Type.String({ minLength: 1, maxLength: 16, description: 'the digits the person typed' }),
  },
  { additionalProperties: false },
);

export const VerifyReply = Type.Object({ id: OtpId, status: Type.Literal('approved') });

const Attempt = Type.Object({
  n: Type.Integer(),
  provider: Type.String(),
  outcome: Type.String(),
  errorCode: Type.Union([Type.String(), Type.Null()]),
  providerStatus: Type.Union([Type.String(), Type.Null()]),
  messageId: Type.Union([Type.String(), Type.Null()]),
  at: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  cost: Type.Optional(Type.Number({ description: 'what the message cost, when the provider or SMS_PRICES says' })),
  currency: Type.Optional(Type.String({ description: 'ISO 4217 currency of cost' })),
});

export const OtpReply = Type.Object({
  id: OtpId,
  status: Status,
  deliveryStatus: DeliveryStatus,
  provider: Type.Union([Type.Literal('twilio'), Type.Literal('octopush'), Type.Null()]),
  phoneNumber: Phone,
  expiresAt: Type.String({ format: 'date-time' }),
  createdAt: Type.String({ format: 'date-time' }),
  metadata: Metadata,
  attempts: Type.Array(Attempt),
});

/** GET /v1/otp/{id}: any path segment; one that is not an id the gateway makes is an unknown OTP (404, CONTRACT). */
export const IdParams = Type.Object({
  id: Type.String({ maxLength: 256, description: 'OTP id (otp_ and 32 hex digits)', examples: [OTP_ID_EXAMPLE] }),
});
export const StatusQuery = Type.Object({ phoneNumber: Phone }, { additionalProperties: false });

const err = (description: string) => Type.Ref('ErrorBody', { description });
export const errors = {
  400: err('invalid body, phone number or code format; number_type_not_allowed (premium rate, fixed line, ...)'),
  401: err('missing or unknown API key'),
  403: err('country not allowed'),
  404: err('unknown OTP, or one created by another API key'),
  409: err('already approved'),
  410: err('expired, replaced or failed'),
  422: err('wrong code, or Idempotency-Key reused with another body'),
  423: err('locked: out of attempts'),
  429: err(
    'rate limited, or refused by an abuse guard (prefix_velocity, low_conversion, country_budget_exhausted, key_budget_exhausted); see Retry-After',
  ),
  503: err('store unreachable'),
};
