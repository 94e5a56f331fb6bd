/** The vendor status maps live with their providers; the callbacks app uses them as they are. */
export {
  mapOctopushStatus as octopushStatusToDelivery,
  mapTwilioStatus as twilioStatusToDelivery,
} from '@otp-gateway/providers';
